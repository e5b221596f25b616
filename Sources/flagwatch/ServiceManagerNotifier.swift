import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// Tells systemd (`Type=notify`) how the daemon is doing, through libsystemd's `sd_notify`:
/// READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1. Without `NOTIFY_SOCKET` (not
/// started by systemd) every call does nothing.
struct ServiceManagerNotifier {
    /// Whether systemd listens (`NOTIFY_SOCKET` is set).
    let isListening: Bool
    /// How often to send WATCHDOG=1: half of `WatchdogSec`, so one late loop iteration does not
    /// get the service killed; nil when the unit has no watchdog (or it is meant for another PID).
    let watchdogPingInterval: Double?

    init() {
        isListening = getenv("NOTIFY_SOCKET") != nil
        var microseconds: UInt64 = 0
        // > 0: enabled for this process (WATCHDOG_USEC set and WATCHDOG_PID absent or ours).
        if sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogPingInterval = Double(microseconds) / 2_000_000
        } else {
            watchdogPingInterval = nil
        }
    }

    /// Sends newline-separated `KEY=value` assignments; returns false if systemd was not reached.
    @discardableResult
    func notify(_ assignments: [String]) -> Bool {
        guard isListening else { return false }
        // unset_environment 0: a reload or a child started later may notify as well.
        return sd_notify(0, assignments.joined(separator: "\n")) > 0
    }

    func ready(status: String) { notify(["READY=1", "STATUS=" + status]) }

    func status(_ text: String) { notify(["STATUS=" + text]) }

    func watchdog() { notify(["WATCHDOG=1"]) }

    /// RELOADING=1 with the time it began: `Type=notify-reload` units (systemd 253+) require
    /// MONOTONIC_USEC; older ones ignore it.
    func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", "STATUS=reloading the configuration"])
    }

    func stopping() { notify(["STOPPING=1", "STATUS=stopping"]) }
}
