#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Seconds on the monotonic clock (never jumps with the wall clock).
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Seconds since the Unix epoch on the wall clock.
public func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A single-threaded event loop over `poll(2)`: descriptors with handlers, repeating timers,
/// and "more work" hooks that keep the loop from sleeping while they have something to do.
///
/// Everything runs on the thread that calls ``run()``; handlers may add and remove watches and
/// timers. Idle, the loop sleeps in `poll` until a descriptor is ready or a timer is due, so
/// nothing is polled periodically except what a timer asks for.
public final class PollLoop {
    public typealias DescriptorHandler = (_ readyEvents: Int16) -> Void

    public struct TimerID: Hashable, Sendable { let value: Int }
    public struct BusyHookID: Hashable, Sendable { let value: Int }

    private struct Watched {
        var descriptor: Int32
        var events: Int16
        var handler: DescriptorHandler
    }

    private struct Timer {
        var id: TimerID
        var interval: Double
        var deadline: Double
        var handler: () -> Void
    }

    private var watched: [Watched] = []
    private var indexByDescriptor: [Int32: Int] = [:]
    private var timers: [Timer] = []
    private var nextTimerID = 0
    private var busyHooks: [(id: BusyHookID, hook: () -> Bool)] = []
    private var nextBusyHookID = 0
    private var stopRequested = false

    public init() {}

    public static let readable = Int16(POLLIN)
    public static let writable = Int16(POLLOUT)
    public static let hangUp = Int16(POLLHUP)
    public static let error = Int16(POLLERR)

    /// Calls `handler` whenever `descriptor` is ready for `events` (or has an error/hang-up).
    public func watch(_ descriptor: Int32, events: Int16 = PollLoop.readable, handler: @escaping DescriptorHandler) {
        if let index = indexByDescriptor[descriptor] {
            watched[index] = Watched(descriptor: descriptor, events: events, handler: handler)
            return
        }
        indexByDescriptor[descriptor] = watched.count
        watched.append(Watched(descriptor: descriptor, events: events, handler: handler))
    }

    /// Changes the events a watched descriptor waits for.
    public func update(_ descriptor: Int32, events: Int16) {
        if let index = indexByDescriptor[descriptor] { watched[index].events = events }
    }

    public func unwatch(_ descriptor: Int32) {
        guard let index = indexByDescriptor.removeValue(forKey: descriptor) else { return }
        let last = watched.count - 1
        if index != last {
            watched[index] = watched[last]
            indexByDescriptor[watched[index].descriptor] = index
        }
        watched.removeLast()
    }

    /// Calls `handler` every `interval` seconds, the first time one interval from now.
    @discardableResult
    public func every(_ interval: Double, _ handler: @escaping () -> Void) -> TimerID {
        nextTimerID += 1
        let id = TimerID(value: nextTimerID)
        timers.append(
            Timer(id: id, interval: max(interval, 0.001), deadline: monotonicSeconds() + interval, handler: handler))
        return id
    }

    public func cancel(_ timer: TimerID) {
        timers.removeAll { $0.id == timer }
    }

    /// Called once per iteration; while any returns true (work left), the loop does not sleep.
    @discardableResult
    public func whileBusy(_ hook: @escaping () -> Bool) -> BusyHookID {
        nextBusyHookID += 1
        let id = BusyHookID(value: nextBusyHookID)
        busyHooks.append((id, hook))
        return id
    }

    /// Stops calling a ``whileBusy(_:)`` hook (e.g. of a follower replaced by a reload).
    public func removeBusyHook(_ id: BusyHookID) {
        busyHooks.removeAll { $0.id == id }
    }

    /// Ends ``run()`` after the current iteration.
    public func stop() { stopRequested = true }

    public var isStopping: Bool { stopRequested }

    /// Lets ``run()`` be called again after a ``stop()``.
    public func resume() { stopRequested = false }

    /// Runs until ``stop()``.
    public func run() {
        var busy = false
        while !stopRequested {
            let now = monotonicSeconds()
            var timeoutMilliseconds: Int32 = -1
            if busy {
                timeoutMilliseconds = 0
            } else if let nextDeadline = timers.map(\.deadline).min() {
                timeoutMilliseconds = Int32(min(max(0, (nextDeadline - now) * 1000).rounded(.up), 3_600_000))
            }
            var descriptors = watched.map { pollfd(fd: $0.descriptor, events: $0.events, revents: 0) }
            let readyCount = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
            if readyCount > 0 {
                for entry in descriptors where entry.revents != 0 {
                    // A handler earlier in this round may have unwatched (or replaced) it.
                    guard let index = indexByDescriptor[entry.fd] else { continue }
                    watched[index].handler(entry.revents)
                }
            }
            runDueTimers()
            busy = false
            for entry in busyHooks where entry.hook() { busy = true }
        }
    }

    private func runDueTimers() {
        let now = monotonicSeconds()
        for timer in timers where timer.deadline <= now {
            guard let index = timers.firstIndex(where: { $0.id == timer.id }) else { continue }
            // The next deadline counts from the previous one, so intervals do not drift, but a
            // loop that fell far behind does not run a timer many times in a row.
            var next = timers[index].deadline + timers[index].interval
            if next <= now { next = now + timers[index].interval }
            timers[index].deadline = next
            timer.handler()
        }
    }
}
