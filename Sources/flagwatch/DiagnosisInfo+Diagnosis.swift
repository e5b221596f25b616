import AccessLogParser
import Diagnosis
import Exposition
import FlagCounting

extension DiagnosisInfoCache {
    /// The `flagwatch_diagnosis_info` series of the daemon's `/metrics`: each upstream-failure
    /// flag a cluster has in the first window, diagnosed among that flag alone (a URX diagnosis
    /// names the failure its tries ended on), with the cause's short label and the scope as
    /// label values. A series vanishes with its flag from the first window.
    func current(_ counts: FlagCounts) -> [DiagnosisInfo] {
        current(counts, flags: Diagnoser.upstreamFailureFlags) { cluster, flag in
            Diagnoser.diagnose(counts, cluster: cluster, among: [flag]).map {
                (cause: $0.cause.rawValue, scope: $0.scope.rawValue)
            }
        }
    }
}
