import AccessLogParser
import Diagnosis
import Exposition
import FlagCounting

extension StatusPage.Trend {
    /// The diagnosis's trend as the page shows it, times as ``AlertSupervisor/pageTime(_:)``
    /// writes them; nil without one (no windows).
    init?(_ diagnosis: Diagnosis) {
        guard let trend = diagnosis.trend else { return nil }
        self.init(
            direction: trend.rawValue,
            firstSeenFailing: diagnosis.firstSeenFailing.map { AlertSupervisor.pageTime(Double($0)) })
    }
}

extension StatusPage.ClusterDiagnosis {
    /// The Diagnosis module's value as the status page shows it: the one place where its fields
    /// are read for the page (Exposition does not import Diagnosis; ScanDiagnosis is made the
    /// same way). The page shows scope, hosts and trend when they are set.
    init(_ diagnosis: Diagnosis) {
        self.init(
            flag: diagnosis.flag, cause: diagnosis.cause.rawValue, likelyCause: diagnosis.likelyCause,
            nextSteps: diagnosis.nextSteps)
        scope = diagnosis.scope.rawValue
        hosts =
            diagnosis.hosts.isEmpty ? nil : diagnosis.hosts.map { StatusPage.HostCount(host: $0.host, count: $0.count) }
        trend = StatusPage.Trend(diagnosis)
    }

    /// The diagnosis the page shows for a cluster: of the upstream failures in the first window
    /// when it has some (the diagnoser ranks flags by their counts since start, so a cluster
    /// that had 100 UH an hour ago and has UF now is diagnosed on its UF), else of all of them.
    static func current(_ counts: FlagCounts, cluster id: Int) -> StatusPage.ClusterDiagnosis? {
        let recent = Diagnoser.upstreamFailureFlags.filter { counts.windowCount(cluster: id, flag: $0, window: 0) > 0 }
        let flags = recent.isEmpty ? Diagnoser.upstreamFailureFlags : recent
        return Diagnoser.diagnose(counts, cluster: id, among: flags).map(StatusPage.ClusterDiagnosis.init)
    }
}
