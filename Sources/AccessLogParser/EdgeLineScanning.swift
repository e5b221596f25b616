/// Byte helpers shared by the hand-written parsers of nginx and HAProxy lines
/// (``NginxErrorLineParser``, ``NginxAccessLineParser``, ``HAProxyLineParser``). They work on
/// the line in place, like the text plans: positions are offsets into `line`, nothing is copied.
struct EdgeLine {
    let base: UnsafeRawPointer
    let count: Int

    init?(_ line: UnsafeRawBufferPointer) {
        guard let base = line.baseAddress, !line.isEmpty else { return nil }
        self.base = base
        count = line.count
    }

    @inline(__always)
    subscript(_ index: Int) -> UInt8 { base.load(fromByteOffset: index, as: UInt8.self) }

    @inline(__always)
    func view(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + start, count: max(0, end - start))
    }

    /// Whether `literal` is at `position`.
    @inline(__always)
    func has(_ literal: StaticString, at position: Int) -> Bool {
        let length = literal.utf8CodeUnitCount
        return position >= 0 && position + length <= count
            && memoryEqual(base + position, UnsafeRawPointer(literal.utf8Start), length)
    }

    /// Whether `literal` ends right before `end`.
    @inline(__always)
    func has(_ literal: StaticString, endingAt end: Int) -> Bool {
        has(literal, at: end - literal.utf8CodeUnitCount)
    }

    /// The first `literal` in `from..<to`.
    @inline(__always)
    func find(_ literal: StaticString, from: Int, to: Int? = nil) -> Int? {
        let end = to ?? count
        guard from <= end, literal.utf8CodeUnitCount <= end - from else { return nil }
        return firstOccurrence(
            UnsafeRawPointer(literal.utf8Start), literal.utf8CodeUnitCount, in: base, from: from, to: end)
    }

    /// The last `literal` that lies entirely in `from..<to`.
    @inline(__always)
    func findLast(_ literal: StaticString, from: Int, to: Int) -> Int? {
        guard from <= to, literal.utf8CodeUnitCount <= to - from else { return nil }
        return lastOccurrence(
            UnsafeRawPointer(literal.utf8Start), literal.utf8CodeUnitCount, in: base, from: from, to: to)
    }

    /// The first `byte` in `from..<to`.
    @inline(__always)
    func find(byte: UInt8, from: Int, to: Int? = nil) -> Int? {
        var index = from
        let end = to ?? count
        while index < end {
            if self[index] == byte { return index }
            index += 1
        }
        return nil
    }

    /// Where the run of ASCII digits starting at `position` ends (`position` if there is none).
    @inline(__always)
    func digitsEnd(from position: Int) -> Int {
        var index = position
        while index < count, isDigit(self[index]) { index += 1 }
        return index
    }

    /// Where `[` of a bracketed `[06/Feb/2009:12:14:14.655]` or `[06/Dec/2026:20:15:01 +0000]`
    /// date is: the first ` [` followed by `DD/Mon/YYYY:`.
    func bracketedDate(from position: Int) -> Int? {
        var from = position
        while let open = find(" [", from: from) {
            let date = open + 2
            if date + 12 <= count, isDigit(self[date]), isDigit(self[date + 1]), self[date + 2] == UInt8(ascii: "/"),
                self[date + 6] == UInt8(ascii: "/"), self[date + 11] == UInt8(ascii: ":")
            {
                return open + 1
            }
            from = open + 2
        }
        return nil
    }

    /// Whether `start..<end` is `-`, or a number such as HAProxy prints: digits, with an optional
    /// leading `-` (`-1` for "not reached") or `+` (`+30` under `option logasap`).
    @inline(__always)
    func isSignedNumberOrDash(_ start: Int, _ end: Int) -> Bool {
        guard start < end else { return false }
        var index = start
        if self[index] == UInt8(ascii: "-") || self[index] == UInt8(ascii: "+") {
            if end - start == 1 { return self[index] == UInt8(ascii: "-") }
            index += 1
        }
        while index < end {
            guard isDigit(self[index]) else { return false }
            index += 1
        }
        return true
    }
}

@inline(__always)
func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
