import AccessLogParser
import LineFraming

/// Counts since start, per upstream cluster: requests, responses per code class, and each
/// flag; plus how many lines were read and how many were malformed, by reason.
///
/// Counters live in one flat array (a row of ``stride`` per cluster), so counting a record is a
/// hash lookup and a few increments, with no allocation for a cluster seen before.
public final class FlagCounts {
    /// The cluster key for lines without a cluster (`-` in text, null in JSON).
    public static let noCluster = "-"
    /// Code classes: index 0 is "0" (no response), 1...5 are "1xx"..."5xx".
    public static let codeClassNames = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"]

    static let flagCount = ResponseFlag.allCases.count
    static let requestsColumn = 0
    static let codesColumn = 1
    static let flagsColumn = 7
    static let stride = 7 + flagCount

    public let clusters = ClusterInterner()
    private var counters: [Int] = []
    /// Codes not in Envoy's table (extensions' custom flags), interned like cluster names so
    /// counting one allocates nothing once it has been seen: cluster id → code id → count.
    private let unknownCodes = ClusterInterner(initialCapacity: 16)
    private var unknownFlags: [Int: [Int: Int]] = [:]
    private var defects = [Int](repeating: 0, count: LineDefect.allCases.count)
    /// Every complete logical line: parsed plus malformed.
    public private(set) var lines = 0
    /// Scratch for JSON cluster names that carry escapes.
    private var unescapeScratch: [UInt8] = []

    public init() {}

    /// Counts one parsed line.
    @inline(__always)
    public func count(_ record: borrowing AccessRecord) {
        lines += 1
        let cluster = clusterID(record.upstreamCluster)
        let row = cluster * Self.stride
        let codeClass = record.codeClass
        let flags = record.responseFlags
        counters.withUnsafeMutableBufferPointer { counts in
            counts[row + Self.requestsColumn] += 1
            counts[row + Self.codesColumn + codeClass] += 1
            flags.forEach { flag in
                counts[row + Self.flagsColumn + Int(flag.rawValue)] += 1
            }
        }
        if record.unknownFlagCount > 0 {
            record.forEachUnknownFlag { code in
                unknownFlags[cluster, default: [:]][unknownCodes.intern(code), default: 0] += 1
            }
        }
    }

    /// Counts one malformed line.
    public func count(_ defect: LineDefect) {
        lines += 1
        defects[defect.index] += 1
    }

    @inline(__always)
    private func clusterID(_ field: FieldView) -> Int {
        let id: Int
        if field.isAbsent {
            id = internNoCluster()
        } else if field.hasJSONEscapes {
            // Decoding never lengthens; the scratch only grows, so this allocates at most once
            // per longer name.
            if unescapeScratch.count < field.bytes.count {
                unescapeScratch = [UInt8](repeating: 0, count: field.bytes.count)
            }
            id = unescapeScratch.withUnsafeMutableBytes { scratch in
                let length = JSONEscapes.decode(field.bytes, into: scratch)
                return clusters.intern(UnsafeRawBufferPointer(rebasing: scratch[0..<length]))
            }
        } else {
            id = clusters.intern(field.bytes)
        }
        ensureRow(id)
        return id
    }

    /// Grows the counters so cluster `id` has its row.
    @inline(__always)
    private func ensureRow(_ id: Int) {
        let needed = (id + 1) * Self.stride
        if counters.count < needed {
            counters.append(contentsOf: repeatElement(0, count: needed - counters.count))
        }
    }

    private func internNoCluster() -> Int {
        var name = Self.noCluster
        return name.withUTF8 { clusters.intern(UnsafeRawBufferPointer($0)) }
    }

    /// Adds another FlagCounts' counts (e.g. from a chunk of the same file read in parallel).
    public func merge(_ other: FlagCounts) {
        lines += other.lines
        for index in defects.indices { defects[index] += other.defects[index] }
        for otherID in 0..<other.clusters.count {
            var name = other.clusters.names[otherID]
            let id = name.withUTF8 { clusters.intern(UnsafeRawBufferPointer($0)) }
            ensureRow(id)
            for column in 0..<Self.stride { counters[id * Self.stride + column] += other.counters[otherID * Self.stride + column] }
            for (code, count) in other.unknownFlags[otherID] ?? [:] {
                var name = other.unknownCodes.names[code]
                let local = name.withUTF8 { unknownCodes.intern(UnsafeRawBufferPointer($0)) }
                unknownFlags[id, default: [:]][local, default: 0] += count
            }
        }
    }

    // MARK: reading the counts

    public var malformed: [LineDefect: Int] {
        var result: [LineDefect: Int] = [:]
        for defect in LineDefect.allCases where defects[defect.index] > 0 { result[defect] = defects[defect.index] }
        return result
    }

    public var malformedTotal: Int { defects.reduce(0, +) }

    /// The counts of one cluster.
    public struct ClusterCounts: Equatable, Sendable {
        public var name: String
        public var requests: Int
        /// By code class index (see ``FlagCounts/codeClassNames``).
        public var codes: [Int]
        /// Known flags with a non-zero count.
        public var flags: [ResponseFlag: Int]
        /// Codes not in Envoy's table, by code as written.
        public var unknownFlags: [String: Int]

        /// Every flag count by short name (unknown codes by their own text).
        public var flagsByName: [String: Int] {
            var result = unknownFlags
            for (flag, count) in flags { result[flag.shortName, default: 0] += count }
            return result
        }

        public var flaggedTotal: Int { flags.values.reduce(0, +) + unknownFlags.values.reduce(0, +) }
    }

    public func counts(forCluster id: Int) -> ClusterCounts {
        let row = id * Self.stride
        var flags: [ResponseFlag: Int] = [:]
        for flag in ResponseFlag.allCases {
            let value = counters[row + Self.flagsColumn + Int(flag.rawValue)]
            if value > 0 { flags[flag] = value }
        }
        return ClusterCounts(
            name: clusters.names[id],
            requests: counters[row + Self.requestsColumn],
            codes: Array(counters[(row + Self.codesColumn)..<(row + Self.codesColumn + 6)]),
            flags: flags,
            unknownFlags: Dictionary(uniqueKeysWithValues: (unknownFlags[id] ?? [:]).map { (unknownCodes.names[$0.key], $0.value) }))
    }

    /// All clusters' counts, in first-seen order.
    public var allClusters: [ClusterCounts] { (0..<clusters.count).map(counts(forCluster:)) }
}
