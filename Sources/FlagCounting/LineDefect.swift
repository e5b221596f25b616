import AccessLogParser
import LineFraming

/// Every reason a line can be counted as malformed: the parser's, the framer's (too long) and
/// the container unwrapper's. ``rawValue`` is the `reason` label value and JSON key, taken from
/// the upstream module's own enum so each reason is named in one place.
public enum LineDefect: Hashable, Sendable, CaseIterable {
    case record(MalformedReason)
    /// Over the line-length cap, whether the framer or the joining of partial lines found it.
    case tooLong
    /// A wrapper defect other than length (`bad_cri_line`, `bad_docker_line`).
    case container(ContainerDefect)

    public init(_ reason: MalformedReason) { self = .record(reason) }

    public init(_ defect: ContainerDefect) { self = defect == .tooLong ? .tooLong : .container(defect) }

    public static let allCases: [LineDefect] =
        MalformedReason.allCases.map(LineDefect.record) + [.tooLong]
        + ContainerDefect.allCases.filter { $0 != .tooLong }.map(LineDefect.container)

    public var rawValue: String {
        switch self {
        case .record(let reason): reason.rawValue
        case .tooLong: ContainerDefect.tooLong.rawValue
        case .container(let defect): defect.rawValue
        }
    }

    /// The position in ``allCases``: the counter slot. Malformed lines are the rare path, so a
    /// short linear search is fine.
    var index: Int { Self.allCases.firstIndex(of: self) ?? 0 }
}
