#if canImport(Glibc)
    import Glibc
#endif

/// Blocks the calling thread for `milliseconds` (nanosleep, resumed after a signal until the time
/// is up): for the rare bounded waits of the poll-loop thread, such as a reload waiting for an
/// address to be released, where there is nothing else to wait on.
public func pauseThread(milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR {
        request = remaining
    }
}
