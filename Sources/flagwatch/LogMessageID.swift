/// journald MESSAGE_IDs of the daemon's notable log lines (metadata `message_id`; the journal
/// handler writes it as MESSAGE_ID): `journalctl MESSAGE_ID=<id>` finds every such line. Fixed
/// forever once released (generated once with uuid4); listed in README, "Logging".
enum LogMessageID {
    /// `flagwatch <version> ready: ...`: sources open, listening.
    static let ready = "b2502a4b971c4562833cf66199b608e0"
    /// `stopped; checkpoints saved`: a clean stop after SIGTERM or SIGINT.
    static let stopped = "fd9625434f244517a2eefefc4c190282"
    /// An alert became pending (its condition holds, `for` not yet over).
    static let alertPending = "df7623ed38764f7a8bb73d5b8d828edf"
    /// An alert fired (from pending, or at once with `for: 0s`).
    static let alertFiring = "ea6d49aba83b4245b4c676ebfce32cb6"
    /// A firing alert resolved.
    static let alertResolved = "50a8067cd4d14e42b4deac952e156898"
}
