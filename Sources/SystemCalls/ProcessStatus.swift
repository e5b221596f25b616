#if canImport(Glibc)
    import CLinuxShims
    import Glibc

    /// This process's CPU time, memory and descriptors, read from `/proc` (for `process_*`).
    public struct ProcessStatus: Sendable {
        public var cpuSeconds: Double
        public var residentBytes: Int
        public var virtualBytes: Int
        public var openDescriptors: Int
        public var maxDescriptors: Int
        public var startTimeSeconds: Double

        /// Nil if `/proc` is not there.
        public static func current() -> ProcessStatus? {
            guard let stat = try? FileSystem.contents(of: "/proc/self/stat") else { return nil }
            // Fields after the command name, which is in parentheses and may hold spaces.
            guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
            let fields = stat[(close + 2)...].split(separator: UInt8(ascii: " ")).map {
                String(decoding: $0, as: UTF8.self)
            }
            // fields[0] is field 3 (state): utime = 14, stime = 15, starttime = 22, vsize = 23, rss = 24.
            func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            let descriptors = (try? FileSystem.directoryEntries("/proc/self/fd").count) ?? 0
            return ProcessStatus(
                cpuSeconds: (field(14) + field(15)) / ticks,
                residentBytes: Int(field(24) * pageSize),
                virtualBytes: Int(field(23)),
                openDescriptors: max(0, descriptors - 1),  // minus the descriptor listing the directory
                maxDescriptors: Int(limit.rlim_cur),
                startTimeSeconds: bootTime() + field(22) / ticks)
        }

        /// When the system booted, in seconds since 1970: the wall clock minus the time since boot
        /// (suspend included), both read now. Not from /proc/stat, which a sandbox with
        /// `ProcSubset=pid` hides.
        private static func bootTime() -> Double {
            var wall = timespec()
            var sinceBoot = timespec()
            guard clock_gettime(CLOCK_REALTIME, &wall) == 0, clock_gettime(CLOCK_BOOTTIME, &sinceBoot) == 0 else {
                return 0
            }
            return Double(wall.tv_sec - sinceBoot.tv_sec) + Double(wall.tv_nsec - sinceBoot.tv_nsec) / 1e9
        }
    }
#endif

#if canImport(Glibc)
    /// Process-wide settings the daemon makes at startup.
    public enum ProcessLimits {
        /// Raises the soft limit on open descriptors to the hard limit (a node daemon follows
        /// many files and serves many connections; the inherited soft limit is often 1024).
        /// Returns the soft limit in force afterwards.
        @discardableResult
        public static func raiseOpenFileLimit() -> Int {
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
            if limit.rlim_cur < limit.rlim_max {
                var raised = limit
                // Bounded: the poll set and per-descriptor tables are sized by use, not by the
                // limit, but a hard limit of 2^30 is no reason to promise that many.
                raised.rlim_cur = min(limit.rlim_max, 1 << 20)
                if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return Int(raised.rlim_cur) }
            }
            return Int(limit.rlim_cur)
        }

        /// The soft and hard limits on open descriptors (RLIMIT_NOFILE); `Int.max` for unlimited
        /// (RLIM_INFINITY is all ones).
        public static func openFileLimit() -> (soft: Int, hard: Int) {
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (Int.max, Int.max) }
            func clamped(_ value: rlim_t) -> Int { value > rlim_t(Int.max) ? Int.max : Int(value) }
            return (clamped(limit.rlim_cur), clamped(limit.rlim_max))
        }

        /// Makes large allocations (a /metrics page, read buffers) come from their own mappings,
        /// returned to the system when freed. glibc otherwise raises its mmap threshold to the size
        /// of the largest block freed (up to 32 MiB), after which each scrape's page buffer stays in
        /// the heap: measured 7.3 MiB of heap held between scrapes with 1,000 clusters.
        public static func returnLargeAllocationsToSystem(threshold: Int = 256 * 1024) {
            // Setting either value turns glibc's dynamic adjustment off.
            _ = mallopt(M_MMAP_THRESHOLD, Int32(threshold))
            _ = mallopt(M_TRIM_THRESHOLD, Int32(threshold * 2))
        }
    }

    /// The current time as an HTTP `Date` value (`Sun, 22 Nov 2026 07:14:23 GMT`).
    public func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
#endif
