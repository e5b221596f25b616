#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One alert as the rule engine sees it, in the shape of Alertmanager's API v2 `postableAlert`.
public struct PostableAlert: Sendable, Equatable {
    /// The identity of the alert: two alerts with the same label set are the same alert.
    public var labels: [String: String]
    public var annotations: [String: String]
    public var startsAt: Date
    /// nil while the alert fires; the time it resolved once it has.
    public var endsAt: Date?
    public var generatorURL: String

    public init(
        labels: [String: String],
        annotations: [String: String] = [:],
        startsAt: Date,
        endsAt: Date? = nil,
        generatorURL: String = ""
    ) {
        self.labels = labels
        self.annotations = annotations
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.generatorURL = generatorURL
    }

    public var isResolved: Bool { endsAt != nil }

    /// The label set's fingerprint, the same number Alertmanager computes for it.
    public var fingerprint: AlertFingerprint { AlertFingerprint(labels: labels) }
}

/// Alertmanager's fingerprint of a label set (prometheus/common `model.LabelSet.Fingerprint`):
/// 64-bit FNV-1a over the label names in byte order, each name and value followed by 0xFF.
/// Using the same function means the webhook payload's `fingerprint` equals the one
/// Alertmanager itself would show for the alert.
public struct AlertFingerprint: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64

    public init(labels: [String: String]) {
        let fnvOffsetBasis: UInt64 = 14_695_981_039_346_656_037
        let fnvPrime: UInt64 = 1_099_511_628_211
        let labelSeparator: UInt8 = 0xFF
        var hash = fnvOffsetBasis
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* fnvPrime
        }
        // Go sorts label names as byte strings; Swift's String ordering is by Unicode scalars,
        // which differs for some non-ASCII names, so compare the UTF-8 bytes.
        let names = labels.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in names {
            for byte in name.utf8 { add(byte) }
            add(labelSeparator)
            for byte in (labels[name] ?? "").utf8 { add(byte) }
            add(labelSeparator)
        }
        value = hash
    }

    /// 16 lowercase hex digits, as Alertmanager prints it.
    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
