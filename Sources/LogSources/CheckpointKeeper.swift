import Logging

/// What the file and the journal follower do alike with their sources' checkpoints: load one
/// at startup (a damaged one is counted and logged, and the source starts without it), and
/// save one when it changed (a failure is counted and logged once until a save succeeds, and
/// retried at the next save).
struct CheckpointKeeper {
    let store: CheckpointStore
    /// What was last saved (or loaded) per source name, so an idle source is not rewritten.
    private var lastSaved: [String: SourceCheckpoint] = [:]
    /// Sources whose last save failed: the failure was counted and logged.
    private var failing: Set<String> = []

    init(store: CheckpointStore) { self.store = store }

    /// The checkpoint saved for `source`, or nil if it has none or it cannot be used.
    /// - Parameter described: how log lines name the source (`source envoy`).
    func load(source: String, described: @autoclosure () -> String, statistics: inout SourceStatistics, logger: Logger)
        -> LoadedCheckpoint?
    {
        do {
            return try store.load(source: source)
        } catch {
            // Starting as if for the first time loses at most the lines written while stopped;
            // refusing to start would lose everything from now on.
            logger.error("\(error); \(described()) starts without it")
            statistics.count(.checkpointCorrupt)
            return nil
        }
    }

    /// Takes `checkpoint` for what is saved already: it is not written until it changes.
    mutating func remember(_ checkpoint: SourceCheckpoint) { lastSaved[checkpoint.source] = checkpoint }

    /// Saves `checkpoint` (atomically) unless it is what was last saved. Returns whether it is
    /// saved now.
    mutating func save(
        _ checkpoint: SourceCheckpoint, described: @autoclosure () -> String, statistics: inout SourceStatistics,
        logger: Logger
    ) -> Bool {
        if lastSaved[checkpoint.source] == checkpoint { return true }
        do {
            try store.save(checkpoint)
        } catch {
            if failing.insert(checkpoint.source).inserted {
                statistics.count(.checkpointWrite)
                logger.error("cannot save checkpoint for \(described()): \(error)")
            }
            return false
        }
        lastSaved[checkpoint.source] = checkpoint
        failing.remove(checkpoint.source)
        return true
    }
}

/// How long a catch-up (a reload's handoff, a shutdown's last report) may read: at most this
/// many rounds of work, so a source written faster than it is read cannot hold the stop up.
enum CatchUp {
    static let maximumRounds = 16

    /// Runs `round` until it says there is nothing left to read, at most ``maximumRounds`` times.
    static func run(_ round: () -> Bool) {
        var rounds = 0
        while rounds < maximumRounds && round() { rounds += 1 }
    }
}
