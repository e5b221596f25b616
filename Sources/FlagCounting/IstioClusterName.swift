/// The parts of an Istio cluster name, `direction|port|subset|host`, e.g.
/// `outbound|8080|v2|reviews.default.svc.cluster.local` (service `reviews`, namespace `default`).
/// Other names (Envoy's own clusters, `BlackHoleCluster`, `PassthroughCluster`) have empty parts.
public struct IstioClusterName: Sendable, Equatable {
    public var direction = ""
    public var port = ""
    public var subset = ""
    /// The host as written (a Kubernetes service FQDN, or an external host from a ServiceEntry).
    public var host = ""
    public var service = ""
    public var namespace = ""

    public init(
        direction: String = "", port: String = "", subset: String = "", host: String = "",
        service: String = "", namespace: String = ""
    ) {
        self.direction = direction
        self.port = port
        self.subset = subset
        self.host = host
        self.service = service
        self.namespace = namespace
    }

    public init(_ name: String) {
        let parts = name.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, ["outbound", "inbound", "inbound-vip"].contains(parts[0]) else { return }
        direction = String(parts[0])
        port = String(parts[1])
        subset = String(parts[2])
        host = String(parts[3])
        // <service>.<namespace>.svc[.<cluster domain>]: a Kubernetes service.
        let labels = parts[3].split(separator: ".", omittingEmptySubsequences: false)
        if labels.count >= 3, labels[2] == "svc", !labels[0].isEmpty, !labels[1].isEmpty {
            service = String(labels[0])
            namespace = String(labels[1])
        } else {
            service = host
        }
    }

    /// Whether the host is outside the mesh's Kubernetes services (a ServiceEntry host).
    public var isExternalHost: Bool { !host.isEmpty && namespace.isEmpty }
}
