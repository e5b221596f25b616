#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the framer hands on: a complete line, or the news that one was too long to keep.
public enum FramedLine {
    /// A complete line without its `\n` (and without a `\r` before it). Points into the
    /// framer's buffer: valid until the next `fill`/`feed`.
    case line(UnsafeRawBufferPointer)
    /// A line longer than the cap was skipped whole; `length` is how long it was.
    case tooLong(length: Int)
}

/// Splits a byte stream into lines, in place, in one buffer allocated once.
///
/// Bytes are read straight into the buffer (``fill(_:)``) or copied in (``feed(_:)``); every
/// complete line is handed out as a view into the buffer, so framing copies nothing except the
/// one partial line at the end of a read, which is moved to the front before the next read. A
/// partial line waits until its newline arrives; a line longer than `maxLineLength` is dropped
/// whole (reported once, as ``FramedLine/tooLong(length:)``) without buffering it.
public final class LineFramer {
    public let maxLineLength: Int
    /// Allocated on first use: a framer that only ever frames complete lines in place (a
    /// followed file hands on whole lines) never needs it.
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private let capacity: Int
    /// The first byte not yet handed out.
    private var start = 0
    /// One past the last byte read.
    private var end = 0
    /// Where the newline search resumes: bytes in start..<scanned hold no newline.
    private var scanned = 0
    /// Dropping an over-long line until its newline; how many bytes it has had so far.
    private var skippedLength: Int?
    /// Whether the last byte dropped with the over-long line was a `\r` (its `\n` may follow).
    private var skippedEndsWithCR = false

    /// - Parameters:
    ///   - maxLineLength: longer lines are skipped whole (default 64 KiB).
    ///   - bufferSize: the read size; at least `maxLineLength + 1` is used.
    public init(maxLineLength: Int = 64 * 1024, bufferSize: Int = 4 * 1024 * 1024) {
        self.maxLineLength = max(1, maxLineLength)
        capacity = max(bufferSize, self.maxLineLength + 2)
    }

    deinit { if storage.baseAddress != nil { storage.deallocate() } }

    @inline(__always)
    private func allocateStorageIfNeeded() {
        if storage.baseAddress == nil { storage = .allocate(byteCount: capacity, alignment: 64) }
    }

    /// Bytes held for a line that has no newline yet.
    public var pendingByteCount: Int { end - start }

    /// Lets `read` write into the free part of the buffer; returns what it reported (0 = end
    /// of input). Call ``drain(_:)`` afterwards.
    public func fill<E: Error>(_ read: (UnsafeMutableRawBufferPointer) throws(E) -> Int) throws(E) -> Int {
        allocateStorageIfNeeded()
        compact()
        let free = UnsafeMutableRawBufferPointer(rebasing: storage[end...])
        let count = try read(free)
        if count > 0 { end += min(count, free.count) }
        return count
    }

    /// Copies `bytes` in and hands out every line they complete.
    public func feed(_ bytes: UnsafeRawBufferPointer, _ body: (FramedLine) -> Void) {
        allocateStorageIfNeeded()
        var remaining = bytes
        while !remaining.isEmpty {
            compact()
            let room = storage.count - end
            let chunk = min(room, remaining.count)
            UnsafeMutableRawBufferPointer(rebasing: storage[end..<(end + chunk)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: remaining[0..<chunk]))
            end += chunk
            remaining = UnsafeRawBufferPointer(rebasing: remaining[chunk...])
            drain(body)
        }
    }

    /// Frames `bytes` in place: every complete line in them is handed out as a view into
    /// `bytes` itself, with no copy. Only an incomplete last line is copied in, to be completed
    /// by the next call. Use for memory the caller keeps valid during the call (a mapped file).
    public func frame(_ bytes: UnsafeRawBufferPointer, _ body: (FramedLine) -> Void) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var lineStart = 0
        if end > start || skippedLength != nil {
            // A line held from before ends at the first newline here: finish it the copying way.
            guard let newline = memchr(base, 0x0A, bytes.count) else {
                feed(bytes, body)
                return
            }
            lineStart = base.distance(to: UnsafeRawPointer(newline)) + 1
            feed(UnsafeRawBufferPointer(rebasing: bytes[0..<lineStart]), body)
        }
        while lineStart < bytes.count, let newline = memchr(base + lineStart, 0x0A, bytes.count - lineStart) {
            let newlineIndex = base.distance(to: UnsafeRawPointer(newline))
            emit(UnsafeRawBufferPointer(start: base + lineStart, count: newlineIndex - lineStart), body)
            lineStart = newlineIndex + 1
        }
        if lineStart < bytes.count {
            feed(UnsafeRawBufferPointer(rebasing: bytes[lineStart...]), body)
        }
    }

    /// Hands out one complete line (without its newline): a view, or `tooLong`.
    @inline(__always)
    private func emit(_ line: UnsafeRawBufferPointer, _ body: (FramedLine) -> Void) {
        var length = line.count
        if length > 0, line[length - 1] == 0x0D { length -= 1 }
        if length > maxLineLength {
            body(.tooLong(length: length))
        } else {
            body(.line(UnsafeRawBufferPointer(rebasing: line[0..<length])))
        }
    }

    /// Hands out every complete line in the buffer.
    public func drain(_ body: (FramedLine) -> Void) {
        guard let base = storage.baseAddress else { return }
        while scanned < end {
            guard let newline = memchr(base + scanned, 0x0A, end - scanned) else {
                scanned = end
                break
            }
            let newlineIndex = base.distance(to: UnsafeMutableRawPointer(newline))
            let lineStart = start
            start = newlineIndex + 1
            scanned = start
            if let skipped = skippedLength {
                skippedLength = nil
                // Measured without the `\r` of a `\r\n`, as a line that arrives whole is.
                var length = skipped + newlineIndex - lineStart
                let crBefore =
                    newlineIndex > lineStart
                    ? base.load(fromByteOffset: newlineIndex - 1, as: UInt8.self) == 0x0D
                    : skippedEndsWithCR
                if crBefore { length -= 1 }
                body(.tooLong(length: length))
                continue
            }
            emit(UnsafeRawBufferPointer(start: base + lineStart, count: newlineIndex - lineStart), body)
        }
        // The partial line is already over the cap: drop what we hold and remember its length.
        // A line exactly at the cap may still be waiting for the `\n` of its `\r\n`.
        let held = end - start
        let heldIsCapPlusCR = held == maxLineLength + 1 && base.load(fromByteOffset: end - 1, as: UInt8.self) == 0x0D
        if held > maxLineLength && !heldIsCapPlusCR {
            skippedLength = (skippedLength ?? 0) + (end - start)
            skippedEndsWithCR = base.load(fromByteOffset: end - 1, as: UInt8.self) == 0x0D
            start = end
            scanned = end
        }
    }

    /// Moves the partial line to the front so the next read has room.
    private func compact() {
        guard start > 0 else { return }
        let pending = end - start
        if pending > 0, let base = storage.baseAddress {
            memmove(base, base + start, pending)
        }
        scanned -= start
        start = 0
        end = pending
    }
}
