/// A rule's `clusters.include` / `exclude` pattern, searched in cluster names in time linear in
/// the name's length (a Thompson automaton, as RE2 and Prometheus do), never by backtracking:
/// cluster names come from log lines, and a backtracking engine takes exponential time on
/// patterns like `^(a+)+$` against `aaa…ab`, which would hang the daemon's only loop.
///
/// The syntax is RE2's core: literals, `.`, `[…]` and `[^…]` with ranges and `\d \w \s`,
/// `\d \D \w \W \s \S`, escaped punctuation, `\t \n \r \f \v`, `^ $ \A \z`, groups `(…)`,
/// `(?:…)`, `(?P<name>…)` and `(?<name>…)`, alternation `|`, and the quantifiers `* + ? {n}
/// {n,} {n,m}` (counts up to 1000), lazy or not (the same for a yes/no match). Rejected at
/// config load, with the reason: backreferences, lookaround, possessive quantifiers, flags such
/// as `(?i)`, `\b`, `\p{…}` and POSIX classes.
public struct ClusterPattern: Sendable, Equatable {
    public let source: String
    private let program: [Instruction]

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public init(_ pattern: String) throws(Invalid) {
        source = pattern
        var parser = Parser(Array(pattern.unicodeScalars))
        let tree = try parser.parseWhole()
        var compiler = Compiler()
        try compiler.emit(tree)
        compiler.program.append(.accept)
        program = compiler.program
    }

    public static func == (lhs: ClusterPattern, rhs: ClusterPattern) -> Bool { lhs.source == rhs.source }

    /// Whether the pattern matches anywhere in `name` (a search, like `firstMatch`).
    public func isFound(in name: String) -> Bool {
        let input = Array(name.unicodeScalars)
        var current = ThreadList(capacity: program.count)
        var next = ThreadList(capacity: program.count)
        var stack: [Int] = []
        for position in 0...input.count {
            // A new thread at every position: the search is unanchored unless the pattern says so.
            if add(0, at: position, length: input.count, to: &current, stack: &stack) { return true }
            guard position < input.count else { break }
            let scalar = input[position].value
            next.clear()
            for pc in current.members {
                if case .scalar(let set) = program[pc], set.contains(scalar) {
                    if add(pc + 1, at: position + 1, length: input.count, to: &next, stack: &stack) { return true }
                }
            }
            swap(&current, &next)
        }
        return false
    }

    /// Follows jumps, splits and assertions from `start`; true when `accept` is reached.
    private func add(_ start: Int, at position: Int, length: Int, to list: inout ThreadList, stack: inout [Int]) -> Bool
    {
        stack.removeAll(keepingCapacity: true)
        stack.append(start)
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .accept: return true
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .begin: if position == 0 { stack.append(pc + 1) }
            case .end: if position == length { stack.append(pc + 1) }
            case .scalar: break
            }
        }
        return false
    }
}

// MARK: - The automaton

private enum Instruction: Sendable {
    case scalar(ScalarSet)
    case split(Int, Int)
    case jump(Int)
    case begin
    case end
    case accept
}

/// Program counters visited in one step, each once (a sparse set: clear in O(1)).
private struct ThreadList {
    private var dense: [Int]
    private var sparse: [Int]
    private(set) var count = 0

    init(capacity: Int) {
        dense = [Int](repeating: 0, count: capacity)
        sparse = [Int](repeating: 0, count: capacity)
    }

    mutating func clear() { count = 0 }

    /// False when `pc` was there already.
    mutating func insert(_ pc: Int) -> Bool {
        let slot = sparse[pc]
        if slot < count && dense[slot] == pc { return false }
        sparse[pc] = count
        dense[count] = pc
        count += 1
        return true
    }

    var members: ArraySlice<Int> { dense[0..<count] }
}

/// A set of Unicode scalar values: ranges, possibly negated.
private struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>]
    var negated = false

    static func single(_ value: UInt32) -> ScalarSet { ScalarSet(ranges: [value...value]) }
    static let anyButNewline = ScalarSet(ranges: [0x0A...0x0A], negated: true)
    static let digit = ScalarSet(ranges: [0x30...0x39])
    static let word = ScalarSet(ranges: [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A])
    static let space = ScalarSet(ranges: [0x09...0x0A, 0x0C...0x0D, 0x20...0x20])

    func contains(_ value: UInt32) -> Bool {
        ranges.contains { $0.contains(value) } != negated
    }
}

// MARK: - Parsing

private indirect enum Node {
    case empty
    case scalar(ScalarSet)
    case begin
    case end
    case concatenation([Node])
    case alternation([Node])
    case repetition(Node, min: Int, max: Int?)
}

private struct Parser {
    static let maximumCount = 1000
    let scalars: [Unicode.Scalar]
    var index = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    var atEnd: Bool { index >= scalars.count }
    var current: Unicode.Scalar? { atEnd ? nil : scalars[index] }

    func peek(_ offset: Int) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    func invalid(_ reason: String) -> ClusterPattern.Invalid {
        ClusterPattern.Invalid(reason: "\(reason) at offset \(index)")
    }

    mutating func parseWhole() throws(ClusterPattern.Invalid) -> Node {
        let node = try parseAlternation()
        if !atEnd { throw invalid("unmatched ')'") }
        return node
    }

    mutating func parseAlternation() throws(ClusterPattern.Invalid) -> Node {
        var branches = [try parseConcatenation()]
        while current == "|" {
            index += 1
            branches.append(try parseConcatenation())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func parseConcatenation() throws(ClusterPattern.Invalid) -> Node {
        var items: [Node] = []
        while let scalar = current, scalar != "|", scalar != ")" {
            var atom = try parseAtom()
            if let quantified = try parseQuantifier(of: atom) { atom = quantified }
            items.append(atom)
        }
        return items.count == 1 ? items[0] : (items.isEmpty ? .empty : .concatenation(items))
    }

    /// A quantifier after `atom`, if any; a second one in a row is an error, as in RE2.
    mutating func parseQuantifier(of atom: Node) throws(ClusterPattern.Invalid) -> Node? {
        guard let scalar = current else { return nil }
        let bounds: (Int, Int?)
        switch scalar {
        case "*":
            bounds = (0, nil)
            index += 1
        case "+":
            bounds = (1, nil)
            index += 1
        case "?":
            bounds = (0, 1)
            index += 1
        case "{":
            guard let counted = try parseCount() else { return nil }
            bounds = counted
        default: return nil
        }
        switch atom {
        case .begin, .end: throw invalid("a quantifier after an anchor")
        default: break
        }
        if current == "?" {
            index += 1  // lazy: the same yes/no answer
        } else if current == "+" {
            throw invalid("possessive quantifiers are not supported")
        }
        if let next = current, next == "*" || next == "+" || next == "?" || (next == "{" && isCount()) {
            throw invalid("a quantifier after a quantifier")
        }
        return .repetition(atom, min: bounds.0, max: bounds.1)
    }

    func isCount() -> Bool {
        var copy = self
        return (try? copy.parseCount()) != nil
    }

    /// `{n}`, `{n,}`, `{n,m}`; nil (and nothing consumed) when `{` starts no count: a literal.
    mutating func parseCount() throws(ClusterPattern.Invalid) -> (Int, Int?)? {
        var cursor = index + 1
        func number() -> Int? {
            var value = 0
            var digits = 0
            while cursor < scalars.count, ("0"..."9").contains(scalars[cursor]) {
                value = min(value * 10 + Int(scalars[cursor].value - 0x30), 100_000)
                digits += 1
                cursor += 1
            }
            return digits > 0 ? value : nil
        }
        guard let low = number() else { return nil }
        var high: Int? = low
        if cursor < scalars.count, scalars[cursor] == "," {
            cursor += 1
            high = number()
        }
        guard cursor < scalars.count, scalars[cursor] == "}" else { return nil }
        index = cursor + 1
        if low > Self.maximumCount || (high ?? 0) > Self.maximumCount {
            throw invalid("a count above \(Self.maximumCount)")
        }
        if let high, high < low { throw invalid("{\(low),\(high)}: the maximum is below the minimum") }
        return (low, high)
    }

    mutating func parseAtom() throws(ClusterPattern.Invalid) -> Node {
        guard let scalar = current else { throw invalid("unexpected end") }
        switch scalar {
        case "(":
            index += 1
            if current == "?" {
                switch (peek(1), peek(2)) {
                case (":"?, _): index += 2
                case ("P"?, "<"?):
                    index += 3
                    try skipGroupName()
                case ("<"?, let third?) where third != "=" && third != "!":
                    index += 2
                    try skipGroupName()
                case ("="?, _), ("!"?, _), ("<"?, "="?), ("<"?, "!"?):
                    throw invalid("lookaround is not supported")
                default:
                    throw invalid("flags and other (?…) groups are not supported")
                }
            }
            let inner = try parseAlternation()
            guard current == ")" else { throw invalid("missing ')'") }
            index += 1
            return inner
        case ")": throw invalid("unmatched ')'")
        case "*", "+", "?": throw invalid("a quantifier with nothing to repeat")
        case "[":
            index += 1
            return .scalar(try parseClass())
        case ".":
            index += 1
            return .scalar(.anyButNewline)
        case "^":
            index += 1
            return .begin
        case "$":
            index += 1
            return .end
        case "\\":
            index += 1
            return try parseEscape(inClass: false)
        default:
            index += 1
            return .scalar(.single(scalar.value))
        }
    }

    mutating func skipGroupName() throws(ClusterPattern.Invalid) {
        while let scalar = current, scalar != ">" {
            guard scalar.properties.isAlphabetic || scalar == "_" || ("0"..."9").contains(scalar) else {
                throw invalid("a group name may hold letters, digits and _ only")
            }
            index += 1
        }
        guard current == ">" else { throw invalid("missing '>' after a group name") }
        index += 1
    }

    /// After a backslash: a class, an anchor, a control character or an escaped punctuation mark.
    mutating func parseEscape(inClass: Bool) throws(ClusterPattern.Invalid) -> Node {
        guard let scalar = current else { throw invalid("a trailing backslash") }
        index += 1
        switch scalar {
        case "d": return .scalar(.digit)
        case "D": return .scalar(ScalarSet(ranges: ScalarSet.digit.ranges, negated: true))
        case "w": return .scalar(.word)
        case "W": return .scalar(ScalarSet(ranges: ScalarSet.word.ranges, negated: true))
        case "s": return .scalar(.space)
        case "S": return .scalar(ScalarSet(ranges: ScalarSet.space.ranges, negated: true))
        case "t": return .scalar(.single(0x09))
        case "n": return .scalar(.single(0x0A))
        case "r": return .scalar(.single(0x0D))
        case "f": return .scalar(.single(0x0C))
        case "v": return .scalar(.single(0x0B))
        case "A" where !inClass: return .begin
        case "z" where !inClass: return .end
        case "1"..."9", "k": throw invalid("backreferences are not supported")
        case "b", "B": throw invalid("word boundaries (\\b, \\B) are not supported")
        default:
            guard scalar.isASCII, !scalar.properties.isAlphabetic, !("0"..."9").contains(scalar) else {
                throw invalid("\\\(scalar) is not supported")
            }
            return .scalar(.single(scalar.value))
        }
    }

    mutating func parseClass() throws(ClusterPattern.Invalid) -> ScalarSet {
        var set = ScalarSet(ranges: [])
        if current == "^" {
            set.negated = true
            index += 1
        }
        var first = true
        while let scalar = current, scalar != "]" || first {
            first = false
            if scalar == "[" && peek(1) == ":" { throw invalid("POSIX classes ([:alpha:]) are not supported") }
            var low: UInt32
            if scalar == "\\" {
                index += 1
                guard case .scalar(let escaped) = try parseEscape(inClass: true) else {
                    throw invalid("an anchor in a class")
                }
                if escaped.negated || escaped.ranges.count != 1 || escaped.ranges[0].count != 1 {
                    guard !escaped.negated else { throw invalid("\\D, \\W, \\S inside a class are not supported") }
                    set.ranges += escaped.ranges
                    continue
                }
                low = escaped.ranges[0].lowerBound
            } else {
                low = scalar.value
                index += 1
            }
            if current == "-", let after = peek(1), after != "]" {
                index += 1
                var high: UInt32
                if after == "\\" {
                    index += 1
                    guard case .scalar(let escaped) = try parseEscape(inClass: true), !escaped.negated,
                        escaped.ranges.count == 1, escaped.ranges[0].count == 1
                    else {
                        throw invalid("a range must end in a single character")
                    }
                    high = escaped.ranges[0].lowerBound
                } else {
                    high = after.value
                    index += 1
                }
                guard low <= high else { throw invalid("a range from a higher to a lower character") }
                set.ranges.append(low...high)
            } else {
                set.ranges.append(low...low)
            }
        }
        guard current == "]" else { throw invalid("missing ']'") }
        index += 1
        return set
    }
}

// MARK: - Compiling

private struct Compiler {
    static let maximumSize = 20_000
    var program: [Instruction] = []

    mutating func append(_ instruction: Instruction) throws(ClusterPattern.Invalid) {
        guard program.count < Self.maximumSize else {
            throw ClusterPattern.Invalid(reason: "the pattern is too large (counted repetitions multiply its size)")
        }
        program.append(instruction)
    }

    mutating func emit(_ node: Node) throws(ClusterPattern.Invalid) {
        switch node {
        case .empty: break
        case .scalar(let set): try append(.scalar(set))
        case .begin: try append(.begin)
        case .end: try append(.end)
        case .concatenation(let items):
            for item in items { try emit(item) }
        case .alternation(let branches):
            var jumpsToEnd: [Int] = []
            for (position, branch) in branches.enumerated() {
                if position < branches.count - 1 {
                    let split = program.count
                    try append(.split(split + 1, -1))
                    try emit(branch)
                    jumpsToEnd.append(program.count)
                    try append(.jump(-1))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try emit(branch)
                }
            }
            for jump in jumpsToEnd { program[jump] = .jump(program.count) }
        case .repetition(let inner, let min, let max):
            for _ in 0..<min { try emit(inner) }
            if let max {
                // Each optional copy: split over it.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(program.count)
                    try append(.split(program.count + 1, -1))
                    try emit(inner)
                }
                for split in splits { program[split] = .split(split + 1, program.count) }
            } else {
                let loop = program.count
                try append(.split(loop + 1, -1))
                try emit(inner)
                try append(.jump(loop))
                program[loop] = .split(loop + 1, program.count)
            }
        }
    }
}
