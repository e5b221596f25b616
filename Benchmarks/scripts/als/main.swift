// Entries per second per core of a gRPC access-log source's poll-loop side: decoding
// StreamAccessLogsMessages in place (EnvoyAccessLogDecoder) and counting each entry
// (ReceivedEntryCounter into FlagCounts with 3 windows), on one thread. The network side
// (grpc-swift's HTTP/2 and the copy into the handoff queue) runs on other threads and is not
// measured here. Built and run by als_decode_bench.sh (-O, as the release build).
import AccessLogParser
import FlagCounting

func varint(_ value: Int) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    repeat {
        let low = UInt8(value & 0x7F)
        value >>= 7
        bytes.append(value > 0 ? low | 0x80 : low)
    } while value > 0
    return bytes
}

/// A length-delimited protobuf field.
func field(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(body.count) + body
}

// A StreamAccessLogsMessage like an http_grpc batch: 64 entries over 8 clusters, 1 in 10 a 503
// with UF, each with the fields Envoy fills that flagwatch reads or skips.
var entries: [UInt8] = []
for index in 0..<64 {
    let cluster = Array("outbound|\(8080 + index % 8)||svc\(index % 8).default.svc.cluster.local".utf8)
    var common = field(13, field(1, field(2, Array("10.1.2.\(index % 200)".utf8)) + [0x18, 0x90, 0x3F]))
    common += field(15, cluster)
    if index % 10 == 0 { common += field(16, [0x30, 0x01]) }
    common += field(19, Array("default".utf8))
    let response =
        field(1, [0x08, index % 10 == 0 ? 0xF7 : 0xC8, index % 10 == 0 ? 0x03 : 0x01])
        + field(6, Array("via_upstream".utf8))
    entries += field(1, field(1, common) + field(4, response))
}
let message = field(2, entries)
let counts = FlagCounts(windows: [60, 300, 900])
let counter = ReceivedEntryCounter(counts: counts)
let decoder = EnvoyAccessLogDecoder(fields: .countingWithFailureDetails)
let clock = ContinuousClock()
let rounds = 200_000
let elapsed = clock.measure {
    message.withUnsafeBytes { bytes in
        for _ in 0..<rounds {
            _ = try? decoder.decodeStreamAccessLogsMessage(bytes) { counter.count($0) }
        }
    }
}
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print(
    "message \(message.count) B, \(64 * rounds) entries in \(seconds) s: \(Double(64 * rounds) / seconds / 1e6) M entries/s, \(Double(message.count * rounds) / seconds / 1e9) GB/s; lines \(counts.lines)"
)
