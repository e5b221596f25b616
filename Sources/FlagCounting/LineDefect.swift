import AccessLogParser
import LineFraming

/// Every reason a line can be counted as malformed: the parser's, the framer's and the
/// container unwrapper's. The raw values are the `reason` label values and JSON keys.
public enum LineDefect: String, CaseIterable, Sendable {
    case emptyLine = "empty_line"
    case notAccessLog = "not_access_log"
    case formatMismatch = "format_mismatch"
    case noFlagsField = "no_flags_field"
    case badFlags = "bad_flags"
    case badResponseCode = "bad_response_code"
    case badJSON = "bad_json"
    case tooLong = "too_long"
    case badCRILine = "bad_cri_line"
    case badDockerLine = "bad_docker_line"

    public init(_ reason: MalformedReason) {
        switch reason {
        case .emptyLine: self = .emptyLine
        case .notAccessLog: self = .notAccessLog
        case .formatMismatch: self = .formatMismatch
        case .noFlagsField: self = .noFlagsField
        case .badFlags: self = .badFlags
        case .badResponseCode: self = .badResponseCode
        case .badJSON: self = .badJSON
        }
    }

    public init(_ defect: ContainerDefect) {
        switch defect {
        case .badCRILine: self = .badCRILine
        case .badDockerLine: self = .badDockerLine
        case .tooLong: self = .tooLong
        }
    }

    var index: Int {
        switch self {
        case .emptyLine: 0
        case .notAccessLog: 1
        case .formatMismatch: 2
        case .noFlagsField: 3
        case .badFlags: 4
        case .badResponseCode: 5
        case .badJSON: 6
        case .tooLong: 7
        case .badCRILine: 8
        case .badDockerLine: 9
        }
    }
}
