import Synchronization

/// The format strings flagwatch knows by name (docs/formats.md §2 and §3.1).
public enum FormatPreset {
    /// Envoy's default format. It has no upstream cluster: such lines count under `-`.
    public static let envoyDefault =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#

    /// Istio 1.23+ (`%UPSTREAM_CLUSTER_RAW%`); 1.9–1.22 differ only in printing
    /// `%UPSTREAM_CLUSTER%`, which parses the same way.
    public static let istio =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#

    /// Istio 1.8: no response code details yet, mixer status already gone.
    public static let istio1_8 =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#

    /// Istio 1.3–1.7: an extra quoted mixer-status field after the flags, and a route name.
    public static let istio1_3 =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#

    /// Istio ≤1.2: the mixer-status field, no route name.
    public static let istio1_2 =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME%"#

    /// The Istio text variants, newest first: the order `istio` and `auto` try them in.
    static let istioVariants: [(name: String, format: String)] = [
        ("istio (1.9+)", istio), ("istio (1.8)", istio1_8), ("istio (1.3-1.7)", istio1_3), ("istio (<=1.2)", istio1_2),
    ]

    /// The presets compiled so far, by name and field set. A plan is immutable, so every parser
    /// of a preset shares one: the daemon makes a parser per followed file (a pod's log appears,
    /// a file rotates), and compiling the five text presets each time cost more than parsing a
    /// short file. At most 5 names × the few field sets the program asks for.
    private static let compiled = Mutex<[CompiledKey: TextFormatPlan]>([:])

    private struct CompiledKey: Hashable {
        let name: String
        let fields: UInt16
    }

    static func compile(_ format: String, name: String, fields: RecordFieldSet) -> TextFormatPlan {
        let key = CompiledKey(name: name, fields: fields.rawValue)
        if let plan = compiled.withLock({ $0[key] }) { return plan }
        let plan: TextFormatPlan
        do {
            plan = try TextFormatPlan(formatString: format, name: name, fields: fields)
        } catch {
            // The presets are constants checked by the unit tests; failing here is a bug.
            preconditionFailure("built-in format \(name) does not compile: \(error)")
        }
        return compiled.withLock { table in
            if let earlier = table[key] { return earlier }
            table[key] = plan
            return plan
        }
    }
}
