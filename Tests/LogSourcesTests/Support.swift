import Foundation
import LogSources
import Logging
import SystemCalls

/// A fresh directory under the system temporary directory, removed by `cleanUp`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "flagwatch-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    func write(_ name: String, _ text: String, append: Bool = true) throws {
        let url = URL(fileURLWithPath: file(name))
        if append, let handle = try? FileHandle(forWritingTo: url) {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try handle.close()
        } else {
            try Data(text.utf8).write(to: url)
        }
    }
}

/// Collects what a source hands on, per stream.
final class CollectingSink: LineSink {
    var opened: [StreamID: StreamInfo] = [:]
    var lines: [String] = []
    var skipped: [Int] = []
    var closed: [StreamID] = []

    func streamOpened(_ stream: StreamID, info: StreamInfo) { opened[stream] = info }
    func receive(lines bytes: UnsafeRawBufferPointer, from stream: StreamID) {
        precondition(bytes.last == 0x0A, "a chunk must end with a newline")
        lines += String(decoding: bytes.dropLast(), as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        ).map(String.init)
    }
    func receive(line: UnsafeRawBufferPointer, from stream: StreamID) {
        lines.append(String(decoding: line, as: UTF8.self))
    }
    func skippedLongLine(length: Int, from stream: StreamID) { skipped.append(length) }
    func streamClosed(_ stream: StreamID) { closed.append(stream) }
}

/// Runs `loop` until `done` holds (checked every 10 ms) or `timeout` seconds pass.
func run(_ loop: PollLoop, timeout: Double = 5, until done: @escaping () -> Bool) {
    let deadline = monotonicSeconds() + timeout
    let timer = loop.every(0.01) {
        if done() || monotonicSeconds() > deadline { loop.stop() }
    }
    loop.run()
    loop.cancel(timer)
    loop.resume()
}

let quietLogger: Logger = {
    var logger = Logger(label: "tests")
    logger.logLevel = .critical
    return logger
}()
