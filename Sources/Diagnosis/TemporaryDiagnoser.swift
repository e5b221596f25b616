import AccessLogParser
import FlagCounting

public enum Diagnoser {
    public static func diagnose(_ counts: FlagCounts, cluster: Int, among flags: [ResponseFlag]) -> Diagnosis? { nil }
}
