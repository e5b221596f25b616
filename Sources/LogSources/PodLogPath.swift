/// Namespace, pod and container of a Kubernetes container log file, read from its path:
/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` (also rotated
/// `<restart>.log.<timestamp>`), or the kubelet's symlink
/// `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`.
public struct PodLogPath: Sendable, Equatable, Hashable {
    public var namespace: String
    public var pod: String
    public var container: String

    public init(namespace: String, pod: String, container: String) {
        self.namespace = namespace
        self.pod = pod
        self.container = container
    }

    public init?(path: String) {
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard components.count >= 3 else { return nil }
        let fileName = components[components.count - 1]
        if components[components.count - 2] == "containers", fileName.hasSuffix(".log") {
            // <pod>_<namespace>_<container>-<64 hex id>.log; names hold no `_`.
            let stem = fileName.dropLast(4)
            let parts = stem.split(separator: "_", omittingEmptySubsequences: false)
            guard parts.count == 3, let dash = parts[2].lastIndex(of: "-") else { return nil }
            let container = parts[2][..<dash]
            guard !parts[0].isEmpty, !parts[1].isEmpty, !container.isEmpty else { return nil }
            self.init(namespace: String(parts[1]), pod: String(parts[0]), container: String(container))
            return
        }
        // <restart count>.log or <restart count>.log.<rotation timestamp>[.gz]
        let restart = fileName.prefix(while: { $0.isASCII && $0.isNumber })
        guard !restart.isEmpty, fileName.dropFirst(restart.count).hasPrefix(".log") else { return nil }
        let podDirectory = components[components.count - 3].split(separator: "_", omittingEmptySubsequences: false)
        guard podDirectory.count == 3, !podDirectory[0].isEmpty, !podDirectory[1].isEmpty, !podDirectory[2].isEmpty
        else { return nil }
        self.init(
            namespace: String(podDirectory[0]), pod: String(podDirectory[1]),
            container: components[components.count - 2])
    }
}
