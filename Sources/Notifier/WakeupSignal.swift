import Synchronization

/// Wakes one waiting task from any thread without blocking the signaller: `update()` runs on the
/// daemon's synchronous poll loop and must never wait for a delivery task. A signal sent while
/// nobody waits is remembered (once), so no wakeup between two waits is lost.
final class WakeupSignal: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var isSignalled = false
        var waiter: Waiter?
        var lastWaiterID: UInt64 = 0
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state.waiter else {
                state.isSignalled = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.timer?.cancel()
        waiter?.continuation.resume()
    }

    /// Returns when signalled or at `deadline` (nil: only when signalled). One waiter at a time.
    func wait(until deadline: ContinuousClock.Instant?) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiterID = state.withLock { state -> UInt64? in
                if state.isSignalled {
                    state.isSignalled = false
                    return nil
                }
                precondition(state.waiter == nil, "WakeupSignal has one waiter at a time")
                state.lastWaiterID += 1
                state.waiter = Waiter(id: state.lastWaiterID, continuation: continuation, timer: nil)
                return state.lastWaiterID
            }
            guard let waiterID else {
                continuation.resume()
                return
            }
            guard let deadline else { return }
            let timer = Task { [self] in
                // Cancelled when the signal comes first; then there is nothing to time out.
                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
                self.timeOut(waiterID: waiterID)
            }
            let timerIsStillNeeded = state.withLock { state -> Bool in
                guard state.waiter?.id == waiterID else { return false }
                state.waiter?.timer = timer
                return true
            }
            if !timerIsStillNeeded { timer.cancel() }
        }
    }

    private func timeOut(waiterID: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard state.waiter?.id == waiterID else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.continuation.resume()
    }
}
