import AccessLogParser
import Testing

@Suite("Start times read for scan --since/--until")
struct LogTimestampTests {
    /// 2026-11-22T02:34:27Z, the demo log's first second.
    static let demoSecond = 1_795_314_867

    @Test(
        "Envoy's, RFC 3339, nginx's and HAProxy's forms of one second",
        arguments: [
            "2026-11-22T02:34:27.532Z",  // Envoy's %START_TIME%
            "2026-11-22T02:34:27Z",
            "2026-11-22 02:34:27.532Z",
            "2026-11-22T02:34:27",  // no zone: UTC
            "2026-11-22T03:34:27+01:00",
            "2026-11-22T03:34:27.5+0100",
            "2026-11-21T21:34:27-05:00",
            "22/Nov/2026:02:34:27 +0000",  // nginx $time_local
            "21/Nov/2026:19:34:27 -0700",
            "22/Nov/2026:02:34:27.532",  // HAProxy's accept date
            "2026/11/22 02:34:27",  // nginx's error log
        ])
    func oneSecond(text: String) {
        #expect(LogTimestamp.epochSeconds(text) == Self.demoSecond, "\(text)")
    }

    @Test("leap days, the epoch and before it")
    func calendar() {
        #expect(LogTimestamp.epochSeconds("1970-01-01T00:00:00Z") == 0)
        #expect(LogTimestamp.epochSeconds("1969-12-31T23:59:59Z") == -1)
        #expect(LogTimestamp.epochSeconds("2024-02-29T23:59:59Z") == 1_709_251_199)
        #expect(LogTimestamp.epochSeconds("2023-02-29T00:00:00Z") == nil)
        #expect(LogTimestamp.epochSeconds("2100-02-29T00:00:00Z") == nil)
        #expect(LogTimestamp.epochSeconds("2000-02-29T00:00:00Z") != nil)
    }

    @Test(
        "what is no time gives nil",
        arguments: [
            "", "-", "garbage that is long enough", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z",
            "2026-11-22T24:00:00Z", "2026-11-22T02:60:00Z", "2026-11-22T02:34:27Zjunk", "2026-11-22T02:34:27+1:00",
            "22/Xyz/2026:02:34:27 +0000", "2026-11-22X02:34:27Z", "1795314867", "2026-11-22",
        ])
    func notATime(text: String) {
        #expect(LogTimestamp.epochSeconds(text) == nil, "\(text)")
    }
}
