import FlagCounting
import Testing

@Suite struct IstioClusterNameTests {
    @Test func kubernetesService() {
        let name = IstioClusterName("outbound|8080|v2|reviews.default.svc.cluster.local")
        #expect(
            name
                == IstioClusterName(
                    direction: "outbound", port: "8080", subset: "v2", host: "reviews.default.svc.cluster.local",
                    service: "reviews", namespace: "default"))
        #expect(!name.isExternalHost)
    }

    @Test func externalHostAndInbound() {
        let external = IstioClusterName("outbound|443||api.stripe.com")
        #expect(external.service == "api.stripe.com" && external.namespace.isEmpty && external.isExternalHost)
        let inbound = IstioClusterName("inbound|9080||")
        #expect(inbound.direction == "inbound" && inbound.port == "9080" && inbound.service.isEmpty)
    }

    @Test func nonIstioNames() {
        #expect(IstioClusterName("BlackHoleCluster") == IstioClusterName())
        #expect(IstioClusterName("service_backend") == IstioClusterName())
        #expect(IstioClusterName("-") == IstioClusterName())
    }
}
