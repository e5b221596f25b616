import AccessLogParser

/// One spike rule, as the engine uses it (the config's `alerting.rules[]`, resolved against the
/// counts: which window and which flag group hold its figures).
public struct AlertRule: Sendable {
    public var name: String
    public var flags: [ResponseFlag]
    /// Searched in the cluster name; nil: every cluster / none excluded.
    public var include: String?
    public var exclude: String?
    /// Index into the counts' windows, and its length in seconds.
    public var windowIndex: Int
    public var windowSeconds: Int
    /// Index into the counts' flag groups: lines with any of `flags`, each counted once.
    public var flagGroup: Int
    public var minCount: Int
    public var ratio: Double?
    public var spikeFactor: Double?
    public var pendingFor: Double
    public var resolveAfter: Double
    public var severity: String
    /// Horizon of the baseline's exponentially weighted average, in seconds.
    public var baselineSeconds: Double
    public var runbookURL: String?

    public init(
        name: String, flags: [ResponseFlag], include: String? = nil, exclude: String? = nil,
        windowIndex: Int, windowSeconds: Int, flagGroup: Int, minCount: Int, ratio: Double? = nil,
        spikeFactor: Double? = nil, pendingFor: Double = 0, resolveAfter: Double = 60, severity: String = "warning",
        baselineSeconds: Double = 3600, runbookURL: String? = nil
    ) {
        self.name = name
        self.flags = flags
        self.include = include
        self.exclude = exclude
        self.windowIndex = windowIndex
        self.windowSeconds = windowSeconds
        self.flagGroup = flagGroup
        self.minCount = minCount
        self.ratio = ratio
        self.spikeFactor = spikeFactor
        self.pendingFor = pendingFor
        self.resolveAfter = resolveAfter
        self.severity = severity
        self.baselineSeconds = baselineSeconds
        self.runbookURL = runbookURL
    }

    /// The baseline is not trusted before the engine has watched this long: until then only the
    /// gate and the ratio can fire (otherwise every cluster with a steady trickle of flags
    /// would page right after a restart, its baseline still at zero).
    public var baselineWarmup: Double { min(baselineSeconds / 6, 600) }
}
