import LogSources
import Testing

@Suite struct PodLogPathTests {
    @Test func podsDirectoryLayout() {
        let path = PodLogPath(
            path: "/var/log/pods/shop_api-7d9f8-abcde_0f1e2d3c-1111-2222-3333-444455556666/istio-proxy/0.log")
        #expect(path == PodLogPath(namespace: "shop", pod: "api-7d9f8-abcde", container: "istio-proxy"))
        let rotated = PodLogPath(path: "/var/log/pods/shop_api_uid/istio-proxy/3.log.20261122-101500.gz")
        #expect(rotated == PodLogPath(namespace: "shop", pod: "api", container: "istio-proxy"))
    }

    @Test func containersSymlinkLayout() {
        let path = PodLogPath(path: "/var/log/containers/api-7d9f8-abcde_shop_istio-proxy-0123456789abcdef.log")
        #expect(path == PodLogPath(namespace: "shop", pod: "api-7d9f8-abcde", container: "istio-proxy"))
    }

    @Test func otherPathsAreNotPodLogs() {
        #expect(PodLogPath(path: "/var/log/envoy/access.log") == nil)
        #expect(PodLogPath(path: "/var/log/pods/notapod/istio-proxy/0.log") == nil)
        #expect(PodLogPath(path: "0.log") == nil)
    }
}
