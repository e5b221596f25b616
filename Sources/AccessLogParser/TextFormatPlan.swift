/// An Envoy text format string compiled once into a parsing plan.
///
/// Envoy's text format escapes nothing, so a header value (a user agent) can hold spaces and
/// quotes and even fake fields. The plan therefore reads fields from the left up to the first
/// value that could contain its own delimiter, then from the right end back to the last such
/// value; only the values in between (typically X-Forwarded-For, User-Agent, X-Request-Id,
/// which flagwatch does not use) are split on a best-effort basis. Flags, codes and the cluster
/// sit on the safe sides in every Envoy and Istio default format.
///
/// The plan holds its tables in memory allocated once, so running it touches no reference
/// counts and allocates nothing.
public final class TextFormatPlan: @unchecked Sendable {
    // @unchecked: every stored property is written only in init and read-only afterwards.

    /// The format string the plan was compiled from, for messages.
    public let formatString: String
    /// A name for messages, e.g. `istio (1.9+)`.
    public let name: String

    private let operators: UnsafeMutableBufferPointer<CompiledOperator>
    private let literalBytes: UnsafeMutableRawBufferPointer
    private let prefix: LiteralRef
    private let suffix: LiteralRef
    /// Operators 0..<leftCount are read left to right.
    private let leftCount: Int
    /// Operators middleEnd..<count are read right to left; leftCount..<middleEnd are the middle.
    private let middleEnd: Int
    /// Whether any middle operator fills a field or is checked; if none is, the middle (user
    /// agent, X-Forwarded-For: a third of an Istio line) is not scanned at all.
    private let middleMatters: Bool
    /// The left pass reads operators 0..<leftStop (≤ leftCount): no further than the last
    /// field needed. Likewise the right pass reads down to rightStop (≥ middleEnd).
    private let leftStop: Int
    private let rightStop: Int
    /// With ``RecordFieldSet/failureDetailsOnlyWhenFlagged``: where the left pass stops on a
    /// line without flags (the failure-detail fields it would read further for are not
    /// wanted), and the operator after which that is known (the flags). `flagsOperator` is -1
    /// when the option is off or it would change nothing.
    private let leftStopUnflagged: Int
    private let flagsOperator: Int
    /// Where the right pass stops on a line without flags (Envoy's and Istio's
    /// `%UPSTREAM_HOST%` sits on the right: read for flagged lines only).
    private let rightStopUnflagged: Int
    /// For operator i: how many operators from i on (left pass: i, i+1, ...; right pass: i,
    /// i-1, ...) are neither decoded nor checked-worthy and are delimited by single spaces. Such
    /// a run is crossed by counting spaces, eight bytes at a time, instead of field by field;
    /// the full-field plans that choose among formats (see AccessLogParser) still check them.
    private let leftRun: UnsafeMutableBufferPointer<Int>
    private let rightRun: UnsafeMutableBufferPointer<Int>

    struct LiteralRef {
        var offset: Int
        var count: Int
    }

    struct CompiledOperator {
        /// The record field the value fills; nil when the plan does not need it.
        var field: RecordField?
        var check: ValueCheck
        /// Whether a value that can never hold a space, found from the left (by its following
        /// literal) or from the right (by its preceding literal), must be checked for one: not
        /// when that literal is a lone space, since the search stopped at the first one.
        var spaceCheckFromLeft: Bool
        var spaceCheckFromRight: Bool
        /// Where the one space of the following literal is (`] "` → 1), or -1 when it has none
        /// or several; runs use it to find the literal from the space they counted to.
        var followingSpaceOffset: Int
        /// The value can never hold a space (checked where no lone-space literal found it).
        var neverHoldsSpace: Bool
        /// The literal right after this operator (between it and the next one, or the suffix).
        var following: LiteralRef
    }

    /// Compiles a format string as found in Envoy's or Istio's configuration. Only `fields`
    /// are decoded; the plan reads each line only as far as it must to find them.
    public convenience init(formatString: String, name: String? = nil, fields: RecordFieldSet = .all)
        throws(FormatStringError)
    {
        let parsed = try ParsedFormatString(formatString)
        self.init(parsed: parsed, formatString: formatString, name: name ?? "custom", fields: fields)
    }

    init(parsed: ParsedFormatString, formatString: String, name: String, fields: RecordFieldSet) {
        self.formatString = formatString
        self.name = name
        let count = parsed.operators.count
        let packed = Self.packLiterals(parsed.literals)
        literalBytes = packed.bytes
        prefix = packed.refs[0]
        suffix = packed.refs[count]
        operators = Self.compileOperators(parsed, literalRefs: packed.refs, fields: fields)
        func isNeeded(_ index: Int) -> Bool {
            parsed.operators[index].field.map { fields.contains(RecordFieldSet($0)) } ?? false
        }
        let passes = Passes(parsed)
        leftCount = passes.left
        middleEnd = passes.middleEnd
        middleMatters = (passes.left..<passes.middleEnd).contains(where: isNeeded)
        let neededStops = passes.stops(isNeeded)
        leftStop = neededStops.left
        rightStop = neededStops.right
        let unflagged = Self.unflaggedStop(
            parsed, fields: fields, passes: passes, neededStops: neededStops, isNeeded: isNeeded)
        leftStopUnflagged = unflagged.leftStop
        rightStopUnflagged = unflagged.rightStop
        flagsOperator = unflagged.flagsOperator
        let runs = Self.spaceRuns(parsed, skipsFields: fields != .all, isNeeded: isNeeded)
        leftRun = runs.left
        rightRun = runs.right
    }

    /// Every literal in one allocation, and where each one is in it.
    private static func packLiterals(_ literals: [[UInt8]]) -> (
        bytes: UnsafeMutableRawBufferPointer, refs: [LiteralRef]
    ) {
        var allLiteralBytes: [UInt8] = []
        var refs: [LiteralRef] = []
        for literal in literals {
            refs.append(LiteralRef(offset: allLiteralBytes.count, count: literal.count))
            allLiteralBytes += literal
        }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(allLiteralBytes.count, 1), alignment: 8)
        bytes.copyBytes(from: allLiteralBytes)
        return (bytes, refs)
    }

    private static func compileOperators(
        _ parsed: ParsedFormatString, literalRefs refs: [LiteralRef], fields: RecordFieldSet
    ) -> UnsafeMutableBufferPointer<CompiledOperator> {
        let operators = UnsafeMutableBufferPointer<CompiledOperator>.allocate(capacity: parsed.operators.count)
        let singleSpace: [UInt8] = [0x20]
        for (index, op) in parsed.operators.enumerated() {
            let needed = op.field.map { fields.contains(RecordFieldSet($0)) } ?? false
            operators.initializeElement(
                at: index,
                to: CompiledOperator(
                    field: needed ? op.field : nil, check: op.check,
                    spaceCheckFromLeft: op.valueClass.neverContains(0x20) && parsed.literals[index + 1] != singleSpace,
                    spaceCheckFromRight: op.valueClass.neverContains(0x20) && parsed.literals[index] != singleSpace,
                    followingSpaceOffset: singleSpaceOffset(parsed.literals[index + 1]),
                    neverHoldsSpace: op.valueClass.neverContains(0x20),
                    following: refs[index + 1]))
        }
        return operators
    }

    /// Which operators each pass reads: the left pass while the literal after an operator marks
    /// its end, the right pass while the literal before it marks its start; the rest is the
    /// middle.
    private struct Passes {
        let count: Int
        let left: Int
        let middleEnd: Int

        init(_ parsed: ParsedFormatString) {
            count = parsed.operators.count
            // The last operator is always left to the right-hand pass, which knows where the
            // line ends.
            var left = 0
            while left < count - 1, parsed.operators[left].valueClass.isDelimited(by: parsed.literals[left + 1]) {
                left += 1
            }
            var middleEnd = count
            while middleEnd > left {
                let candidate = middleEnd - 1
                if candidate == left {
                    // Nothing left between the two passes: this operator spans what remains.
                    middleEnd = candidate
                    break
                }
                guard parsed.operators[candidate].valueClass.isDelimited(by: parsed.literals[candidate]) else { break }
                middleEnd = candidate
            }
            self.left = left
            self.middleEnd = middleEnd
        }

        /// Each pass stops at the last field it must decode (the flags field always counts, so
        /// every line is checked at least that far).
        func stops(_ isNeeded: (Int) -> Bool) -> (left: Int, right: Int) {
            var rightStop = (middleEnd..<count).filter(isNeeded).min() ?? count
            var leftStop = ((0..<left).filter(isNeeded).max() ?? -1) + 1
            if middleEnd == left && rightStop == left {
                // The right pass's last operator starts where the left pass ended.
                leftStop = left
            }
            if (left..<middleEnd).contains(where: isNeeded) {
                // The middle is read from where the left pass ends and up to where the right one does.
                leftStop = left
                rightStop = middleEnd
            }
            return (leftStop, rightStop)
        }
    }

    /// Flagged-only failure details: only worth it when the flags are read by the left pass
    /// and the details after them on the left (Istio's layout) or on the right (the upstream
    /// host in Envoy's and Istio's formats); a line without flags then stops where `counting`
    /// would. `flagsOperator` is -1 when that changes nothing.
    private static func unflaggedStop(
        _ parsed: ParsedFormatString, fields: RecordFieldSet, passes: Passes, neededStops: (left: Int, right: Int),
        isNeeded: (Int) -> Bool
    ) -> (leftStop: Int, rightStop: Int, flagsOperator: Int) {
        let flagsIndex = parsed.operators.firstIndex { $0.field == .responseFlags } ?? -1
        let detailFields: [RecordField] = [
            .responseCodeDetails, .transportFailureReason, .duration, .upstreamRequestAttemptCount, .upstreamHost,
        ]
        func isNeededWhenUnflagged(_ index: Int) -> Bool {
            guard let field = parsed.operators[index].field else { return false }
            return fields.contains(RecordFieldSet(field)) && !detailFields.contains(field)
        }
        let unflagged = passes.stops(isNeededWhenUnflagged)
        if fields.contains(.failureDetailsOnlyWhenFlagged), flagsIndex >= 0, flagsIndex < neededStops.left,
            !(passes.left..<passes.middleEnd).contains(where: isNeeded), unflagged.left > flagsIndex,
            unflagged.left < neededStops.left || unflagged.right > neededStops.right
        {
            return (unflagged.left, unflagged.right, flagsIndex)
        }
        return (neededStops.left, neededStops.right, -1)
    }

    /// Runs are only worth it in plans that skip fields; a plan decoding every field (the
    /// ones that choose among formats) checks every value. An operator can be crossed by
    /// counting spaces when its value never holds one and its literal holds exactly one:
    /// then the nth space from where the run starts lies in the run's nth literal.
    private static func spaceRuns(
        _ parsed: ParsedFormatString, skipsFields: Bool, isNeeded: (Int) -> Bool
    ) -> (left: UnsafeMutableBufferPointer<Int>, right: UnsafeMutableBufferPointer<Int>) {
        let count = parsed.operators.count
        let leftRun = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        let rightRun = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        leftRun.initialize(repeating: 0)
        rightRun.initialize(repeating: 0)
        guard skipsFields else { return (leftRun, rightRun) }
        func crossable(_ index: Int, _ literal: [UInt8]) -> Bool {
            !isNeeded(index) && parsed.operators[index].valueClass.neverContains(0x20)
                && singleSpaceOffset(literal) >= 0
        }
        for index in stride(from: count - 2, through: 0, by: -1) where crossable(index, parsed.literals[index + 1]) {
            leftRun[index] = 1 + leftRun[index + 1]
        }
        for index in 1..<count where crossable(index, parsed.literals[index]) {
            rightRun[index] = 1 + rightRun[index - 1]
        }
        return (leftRun, rightRun)
    }

    /// The offset of the only space in `literal`; -1 when it has none or more than one.
    private static func singleSpaceOffset(_ literal: [UInt8]) -> Int {
        let spaces = literal.indices.filter { literal[$0] == 0x20 }
        return spaces.count == 1 ? spaces[0] : -1
    }

    deinit {
        operators.deallocate()
        literalBytes.deallocate()
        leftRun.deallocate()
        rightRun.deallocate()
    }

    /// Parses one line (without its newline) into `record`: the fixed prefix and suffix, then
    /// the left pass, the right pass and, only if a field there is wanted, the middle.
    func parse(_ line: UnsafeRawBufferPointer, into record: inout AccessRecord) -> MalformedReason? {
        guard let base = line.baseAddress else { return .emptyLine }
        let lineEnd = line.count
        var pos = prefix.count
        var end = lineEnd - suffix.count
        if let reason = matchPrefixAndSuffix(base, lineEnd: lineEnd, start: pos, end: end) { return reason }
        if let reason = readLeft(base, pos: &pos, end: end, into: &record) { return reason }
        let flagged = flagsOperator < 0 || !record.responseFlags.isEmpty || record.unknownFlagCount > 0
        let stop = flagged ? rightStop : rightStopUnflagged
        if let reason = readRight(base, pos: pos, end: &end, stop: stop, into: &record) { return reason }
        guard middleMatters else { return nil }
        return readMiddle(base, pos: pos, end: end, into: &record)
    }

    /// The format's fixed text before the first field and after the last one.
    @inline(__always)
    private func matchPrefixAndSuffix(_ base: UnsafeRawPointer, lineEnd: Int, start: Int, end: Int) -> MalformedReason?
    {
        let literals = UnsafeRawPointer(literalBytes.baseAddress.unsafelyUnwrapped)
        guard prefix.count <= lineEnd, memoryEqual(base, literals + prefix.offset, prefix.count) else {
            return .notAccessLog
        }
        guard end >= start, memoryEqual(base + end, literals + suffix.offset, suffix.count) else {
            // Only a line that starts like the format (its first field is delimited as the
            // format says) is a mismatched access-log line; anything else is other output.
            let first = operators[0].following
            let startsLikeFormat =
                operators.count > 1
                && firstOccurrence(literals + first.offset, first.count, in: base, from: start, to: lineEnd) != nil
            return startsLikeFormat ? .formatMismatch : .notAccessLog
        }
        return nil
    }

    /// Left to right, each value ending at its following literal, up to `leftStop`; runs of
    /// unwanted single-space-delimited values are crossed by counting spaces.
    @inline(__always)
    private func readLeft(_ base: UnsafeRawPointer, pos: inout Int, end: Int, into record: inout AccessRecord)
        -> MalformedReason?
    {
        let literals = UnsafeRawPointer(literalBytes.baseAddress.unsafelyUnwrapped)
        let ops = operators.baseAddress.unsafelyUnwrapped
        var index = 0
        var leftStop = self.leftStop
        while index < leftStop {
            let run = min(leftRun[index], leftStop - index)
            if run >= 2 {
                let last = ops[index + run - 1].following
                guard let space = nthSpace(run, in: base, from: pos, to: end) else {
                    return index == 0 ? .notAccessLog : .formatMismatch
                }
                let literalStart = space - ops[index + run - 1].followingSpaceOffset
                guard literalStart >= pos, literalStart + last.count <= end,
                    memoryEqual(base + literalStart, literals + last.offset, last.count)
                else {
                    return index == 0 ? .notAccessLog : .formatMismatch
                }
                pos = literalStart + last.count
                index += run
                continue
            }
            let op = ops[index]
            guard
                let found = firstOccurrence(
                    literals + op.following.offset, op.following.count, in: base, from: pos, to: end)
            else {
                return index == 0 ? .notAccessLog : .formatMismatch
            }
            if let reason = Self.assign(
                op, UnsafeRawBufferPointer(start: base + pos, count: found - pos), op.spaceCheckFromLeft, into: &record)
            {
                return index == 0 ? .notAccessLog : reason
            }
            if index == flagsOperator && record.responseFlags.isEmpty && record.unknownFlagCount == 0 {
                leftStop = leftStopUnflagged
            }
            pos = found + op.following.count
            index += 1
        }
        return nil
    }

    /// Right to left from the line's end, each value starting after its preceding literal,
    /// down to `rightStop`.
    @inline(__always)
    private func readRight(
        _ base: UnsafeRawPointer, pos: Int, end: inout Int, stop rightStop: Int, into record: inout AccessRecord
    ) -> MalformedReason? {
        let literals = UnsafeRawPointer(literalBytes.baseAddress.unsafelyUnwrapped)
        let ops = operators.baseAddress.unsafelyUnwrapped
        var index = operators.count - 1
        while index >= rightStop {
            // A run may not reach the operator that starts where the left pass ended.
            let run = min(
                rightRun[index], index - max(rightStop, middleEnd == leftCount ? middleEnd + 1 : middleEnd) + 1)
            if run >= 2 {
                // The run's last literal is the one before its lowest operator.
                let literal = ops[index - run].following
                guard let space = nthLastSpace(run, in: base, from: pos, to: end) else { return .formatMismatch }
                let literalStart = space - ops[index - run].followingSpaceOffset
                guard literalStart >= pos, literalStart + literal.count <= end,
                    memoryEqual(base + literalStart, literals + literal.offset, literal.count)
                else {
                    return .formatMismatch
                }
                end = literalStart
                index -= run
                continue
            }
            let op = ops[index]
            let start = pos
            if index > middleEnd || middleEnd > leftCount {
                let preceding = ops[index - 1].following
                guard
                    let found = lastOccurrence(
                        literals + preceding.offset, preceding.count, in: base, from: pos, to: end)
                else {
                    return .formatMismatch
                }
                let valueStart = found + preceding.count
                if let reason = Self.assign(
                    op, UnsafeRawBufferPointer(start: base + valueStart, count: end - valueStart),
                    op.spaceCheckFromRight, into: &record)
                {
                    return reason
                }
                end = found
            } else {
                if let reason = Self.assign(
                    op, UnsafeRawBufferPointer(start: base + start, count: end - start), op.neverHoldsSpace,
                    into: &record)
                {
                    return reason
                }
                end = start
            }
            index -= 1
        }
        return nil
    }

    /// The middle, best effort: first occurrences, the last value takes the rest.
    @inline(__always)
    private func readMiddle(_ base: UnsafeRawPointer, pos: Int, end: Int, into record: inout AccessRecord)
        -> MalformedReason?
    {
        let literals = UnsafeRawPointer(literalBytes.baseAddress.unsafelyUnwrapped)
        let ops = operators.baseAddress.unsafelyUnwrapped
        var pos = pos
        var index = leftCount
        while index < middleEnd {
            let op = ops[index]
            var valueEnd = end
            if index < middleEnd - 1 {
                guard
                    let found = firstOccurrence(
                        literals + op.following.offset, op.following.count, in: base, from: pos, to: end)
                else {
                    return .formatMismatch
                }
                valueEnd = found
            }
            if let reason = Self.assign(
                op, UnsafeRawBufferPointer(start: base + pos, count: valueEnd - pos), op.neverHoldsSpace, into: &record)
            {
                return reason
            }
            pos = valueEnd + op.following.count
            index += 1
        }
        return nil
    }

    @inline(__always)
    private static func assign(
        _ op: CompiledOperator, _ value: UnsafeRawBufferPointer, _ checkSpace: Bool, into record: inout AccessRecord
    ) -> MalformedReason? {
        // A value that can never hold a space, found by a literal other than a lone space,
        // must not hold one: then the line has more fields than the format (an Istio 1.3-1.7
        // line read with the <=1.2 plan puts cluster and next field together). Runs (which
        // count spaces) rely on every plan checking this.
        if checkSpace && containsSpace(value) { return .formatMismatch }
        switch op.check {
        case .none: break
        case .number:
            if !isNumberOrDash(value) { return op.field == .responseCode ? .badResponseCode : .formatMismatch }
        case .unquoted:
            if value.first == UInt8(ascii: "\"") || value.last == UInt8(ascii: "\"") { return .formatMismatch }
        case .address:
            if !looksLikeAddress(value) { return .formatMismatch }
        }
        guard let field = op.field else { return nil }
        return RecordAssignment.assign(field, textValue: value, into: &record)
    }
}

/// Writes one decoded field value into a record; shared by the text and JSON parsers.
enum RecordAssignment {
    /// `value` is the field as text (a JSON string's body, or a text-format value).
    @inline(__always)
    static func assign(
        _ field: RecordField, textValue value: UnsafeRawBufferPointer, hasJSONEscapes: Bool = false,
        into record: inout AccessRecord
    ) -> MalformedReason? {
        switch field {
        case .responseCode:
            guard let code = parseCode(value) else { return .badResponseCode }
            record.responseCode = code
        case .duration:
            record.durationMilliseconds = parseUnsigned(value)
        case .upstreamRequestAttemptCount:
            record.upstreamRequestAttempts = parseUnsigned(value)
        case .responseFlags:
            guard !hasJSONEscapes, let decoded = ResponseFlagsField.decode(value) else { return .badFlags }
            record.responseFlags = decoded.flags
            record.unknownFlagCount = decoded.unknownCount
            record.responseFlagsText = FieldView(value)
        case .upstreamCluster:
            var cluster = value
            // Istio 1.23+ appends ';' to the stat name that %UPSTREAM_CLUSTER% prints.
            if cluster.count > 0, cluster[cluster.count - 1] == UInt8(ascii: ";") {
                cluster = UnsafeRawBufferPointer(rebasing: cluster.dropLast())
            }
            record.upstreamCluster = view(cluster, hasJSONEscapes)
        case .startTime: record.startTime = view(value, hasJSONEscapes)
        case .responseCodeDetails: record.responseCodeDetails = view(value, hasJSONEscapes)
        case .transportFailureReason: record.upstreamTransportFailureReason = view(value, hasJSONEscapes)
        case .upstreamHost: record.upstreamHost = view(value, hasJSONEscapes)
        case .authority: record.authority = view(value, hasJSONEscapes)
        case .routeName: record.routeName = view(value, hasJSONEscapes)
        case .requestMethod: record.requestMethod = view(value, hasJSONEscapes)
        }
        return nil
    }

    /// `-` (Envoy's "unset") becomes absent.
    @inline(__always)
    static func view(_ value: UnsafeRawBufferPointer, _ hasJSONEscapes: Bool) -> FieldView {
        if value.count == 1 && value[0] == UInt8(ascii: "-") { return .absent }
        return FieldView(value, hasJSONEscapes: hasJSONEscapes)
    }

    /// A response code: 1 to 3 digits; `-` or nothing means no response (0).
    @inline(__always)
    static func parseCode(_ value: UnsafeRawBufferPointer) -> Int? {
        if value.isEmpty || (value.count == 1 && value[0] == UInt8(ascii: "-")) { return 0 }
        guard value.count <= 3, let code = parseUnsigned(value) else { return nil }
        return code
    }

    @inline(__always)
    static func parseUnsigned(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var result = 0
        for byte in value {
            let digit = Int(byte) &- 48
            guard digit >= 0 && digit <= 9 else { return nil }
            result = result &* 10 &+ digit
        }
        return result
    }
}

/// `-`, or starts like an IP address (`10.`, `[::1]`), or is a URL-like or unix address.
@inline(__always)
func looksLikeAddress(_ value: UnsafeRawBufferPointer) -> Bool {
    guard let first = value.first else { return false }
    if value.count == 1 {
        return first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
    }
    if (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) || first == UInt8(ascii: "[") { return true }
    // `envoy://internal_client_address/`, `unix:/path`, `tcp://1.2.3.4:80` (very old Envoy).
    guard first >= UInt8(ascii: "a") && first <= UInt8(ascii: "z") else { return false }
    for byte in value where byte == UInt8(ascii: ":") { return true }
    return false
}

@inline(__always)
func isNumberOrDash(_ value: UnsafeRawBufferPointer) -> Bool {
    if value.isEmpty { return false }
    if value.count == 1 && value[0] == UInt8(ascii: "-") { return true }
    for byte in value where byte < UInt8(ascii: "0") || byte > UInt8(ascii: "9") { return false }
    return true
}

@inline(__always)
func memoryEqual(_ lhs: UnsafeRawPointer, _ rhs: UnsafeRawPointer, _ count: Int) -> Bool {
    var index = 0
    while index < count {
        if lhs.load(fromByteOffset: index, as: UInt8.self) != rhs.load(fromByteOffset: index, as: UInt8.self) {
            return false
        }
        index += 1
    }
    return true
}

/// The index of the `n`th space in `haystack[from..<to]`, counting from `from`.
@inline(__always)
func nthSpace(_ n: Int, in haystack: UnsafeRawPointer, from: Int, to: Int) -> Int? {
    let spaces: UInt64 = 0x2020_2020_2020_2020
    var remaining = n
    var index = from
    while index + 8 <= to {
        // Walk the set bits rather than popcount them: the build targets baseline x86-64, where
        // popcount is done in software, and a word rarely holds more than two spaces.
        var matches = zeroBytes(haystack.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ spaces)
        while matches != 0 {
            remaining -= 1
            if remaining == 0 { return index + matches.trailingZeroBitCount / 8 }
            matches &= matches - 1
        }
        index += 8
    }
    while index < to {
        if haystack.load(fromByteOffset: index, as: UInt8.self) == 0x20 {
            remaining -= 1
            if remaining == 0 { return index }
        }
        index += 1
    }
    return nil
}

/// The index of the `n`th space in `haystack[from..<to]`, counting back from `to`.
@inline(__always)
func nthLastSpace(_ n: Int, in haystack: UnsafeRawPointer, from: Int, to: Int) -> Int? {
    let spaces: UInt64 = 0x2020_2020_2020_2020
    var remaining = n
    var end = to
    while end - 8 >= from {
        var matches = zeroBytes(haystack.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) ^ spaces)
        while matches != 0 {
            let bit = 63 - matches.leadingZeroBitCount
            remaining -= 1
            if remaining == 0 { return end - 8 + bit / 8 }
            matches &= ~(UInt64(1) << UInt64(bit))
        }
        end -= 8
    }
    while end > from {
        end -= 1
        if haystack.load(fromByteOffset: end, as: UInt8.self) == 0x20 {
            remaining -= 1
            if remaining == 0 { return end }
        }
    }
    return nil
}

/// Whether `value` holds a space, eight bytes at a time.
@inline(__always)
func containsSpace(_ value: UnsafeRawBufferPointer) -> Bool {
    guard let base = value.baseAddress else { return false }
    let spaces: UInt64 = 0x2020_2020_2020_2020
    var index = 0
    while index + 8 <= value.count {
        if zeroBytes(base.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ spaces) != 0 { return true }
        index += 8
    }
    while index < value.count {
        if base.load(fromByteOffset: index, as: UInt8.self) == 0x20 { return true }
        index += 1
    }
    return false
}

/// 0x80 in each byte of `word` that is zero, 0 elsewhere (exact: no false positives from
/// borrows, so it serves searches in both directions).
@inline(__always)
func zeroBytes(_ word: UInt64) -> UInt64 {
    let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
    return ~(((word & low7) &+ low7) | word | low7)
}

/// The index of the first occurrence of `needle` in `haystack[from..<to]`. Looks for the
/// needle's first byte eight bytes at a time (SWAR), since fields run to hundreds of bytes.
@inline(__always)
func firstOccurrence(_ needle: UnsafeRawPointer, _ needleCount: Int, in haystack: UnsafeRawPointer, from: Int, to: Int)
    -> Int?
{
    let first = needle.load(as: UInt8.self)
    let pattern = UInt64(first) &* 0x0101_0101_0101_0101
    let last = to - needleCount
    var index = from
    while index <= last {
        if index + 8 <= to {
            var matches = zeroBytes(haystack.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ pattern)
            if matches == 0 {
                index += 8
                continue
            }
            while matches != 0 {
                let candidate = index + matches.trailingZeroBitCount / 8
                if candidate > last { return nil }
                // Most literals are one byte (a space): nothing more to compare.
                if needleCount == 1 || memoryEqual(haystack + candidate + 1, needle + 1, needleCount - 1) {
                    return candidate
                }
                matches &= matches - 1
            }
            index += 8
        } else {
            if haystack.load(fromByteOffset: index, as: UInt8.self) == first
                && memoryEqual(haystack + index + 1, needle + 1, needleCount - 1)
            {
                return index
            }
            index += 1
        }
    }
    return nil
}

/// The index of the last occurrence of `needle` that lies entirely inside `haystack[from..<to]`.
@inline(__always)
func lastOccurrence(_ needle: UnsafeRawPointer, _ needleCount: Int, in haystack: UnsafeRawPointer, from: Int, to: Int)
    -> Int?
{
    let first = needle.load(as: UInt8.self)
    let pattern = UInt64(first) &* 0x0101_0101_0101_0101
    // Candidates for the needle's start lie in from...(to - needleCount).
    var end = to - needleCount + 1  // one past the last candidate
    while end > from {
        if end - 8 >= from {
            var matches = zeroBytes(haystack.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) ^ pattern)
            while matches != 0 {
                let bit = 63 - matches.leadingZeroBitCount
                let candidate = end - 8 + bit / 8
                if needleCount == 1 || memoryEqual(haystack + candidate + 1, needle + 1, needleCount - 1) {
                    return candidate
                }
                matches &= ~(UInt64(1) << UInt64(bit))
            }
            end -= 8
        } else {
            let candidate = end - 1
            if haystack.load(fromByteOffset: candidate, as: UInt8.self) == first
                && memoryEqual(haystack + candidate + 1, needle + 1, needleCount - 1)
            {
                return candidate
            }
            end -= 1
        }
    }
    return nil
}
