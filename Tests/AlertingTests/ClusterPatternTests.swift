import Testing

@testable import Alerting

@Suite("Cluster patterns: RE2's syntax, matched in linear time")
struct ClusterPatternTests {
    static let istio = "outbound|8080|v1|reviews.bookinfo.svc.cluster.local"

    /// (pattern, name, found?) — the answers Swift's own (backtracking) Regex gives too, which
    /// `agreesWithSwiftRegex` checks.
    static let table: [(String, String, Bool)] = [
        (".*", "", true),
        ("", "anything", true),
        ("^(BlackHoleCluster|PassthroughCluster)$", "BlackHoleCluster", true),
        ("^(BlackHoleCluster|PassthroughCluster)$", "BlackHoleCluster2", false),
        ("^outbound\\|8080\\|", istio, true),
        ("^outbound\\|9080\\|", istio, false),
        ("reviews\\.bookinfo", istio, true),
        ("\\.svc\\.cluster\\.local$", istio, true),
        ("^inbound", istio, false),
        ("\\|v[0-9]+\\|", istio, true),
        ("\\|v\\d{2,}\\|", istio, false),
        ("(?:payments|reviews)\\.", istio, true),
        ("(?P<svc>reviews)", istio, true),
        ("(?<svc>ratings)", istio, false),
        ("[^|]+\\.bookinfo", istio, true),
        ("^[a-z]+\\|\\d{4}\\|", istio, true),
        ("^[a-z]{9}", istio, false),
        ("\\w+\\.\\w+\\.svc", istio, true),
        ("\\s", istio, false),
        ("\\S+", istio, true),
        ("a{0}b", "b", true),
        ("^a{2,3}$", "aaaa", false),
        ("^a{2,3}$", "aaa", true),
        ("^a{2,}$", "aaaaaaa", true),
        ("^(a|ab)(c|bcd)(d*)$", "abcd", true),
        ("x*", "", true),
        ("^$", "", true),
        ("^$", "a", false),
        ("colou?r", "the color", true),
        ("a.c", "abc", true),
        ("a.c", "ac", false),
        ("[a\\-z]", "-", true),
        ("[]a]", "]", true),
        ("^(a*)*$", "aaaa", true),
        ("a+?b", "aaab", true),
        ("\\Aout", istio, true),
        ("local\\z", istio, true),
        ("{", "a{b", true),
        ("a{,2}", "a{,2}", true),
    ]

    @Test("the table's answers", arguments: table.indices)
    func tableAnswers(_ index: Int) throws {
        let (pattern, name, expected) = Self.table[index]
        #expect(try ClusterPattern(pattern).isFound(in: name) == expected, "\(pattern) in \(name)")
    }

    @Test("the table agrees with Swift's Regex, which shares the syntax for these patterns", arguments: table.indices)
    func agreesWithSwiftRegex(_ index: Int) throws {
        let (pattern, name, expected) = Self.table[index]
        // Where Swift's Regex differs from RE2's syntax: (?P<…>, \z, a literal { and a leading ].
        guard !pattern.contains("(?P<"), !pattern.contains("\\z"), pattern != "{", pattern != "a{,2}",
            pattern != "[]a]"
        else { return }
        let regex = try Regex(pattern)
        #expect((try regex.firstMatch(in: name) != nil) == expected, "\(pattern) in \(name)")
    }

    @Test("300 random patterns over a, b, ., |, *, +, ?, groups and classes agree with Swift's Regex on random names")
    func randomPatternsAgree() throws {
        var generator = SplitMix(seed: 0x5eed)
        var compared = 0
        for _ in 0..<300 {
            let pattern = Self.randomPattern(&generator, depth: 0)
            let regex = try Regex(pattern)
            let ours = try ClusterPattern(pattern)
            for _ in 0..<8 {
                let length = Int(generator.next() % 7)
                let name = String((0..<length).map { _ in ["a", "b", "c"][Int(generator.next() % 3)] as Character })
                let theirs = try regex.firstMatch(in: name) != nil
                #expect(ours.isFound(in: name) == theirs, "\(pattern) in \(name)")
                compared += 1
            }
        }
        #expect(compared == 2400)
    }

    static func randomPattern(_ generator: inout SplitMix, depth: Int) -> String {
        let items = 1 + Int(generator.next() % 3)
        var pattern = ""
        for _ in 0..<items {
            var atom: String
            switch generator.next() % (depth < 2 ? 7 : 5) {
            case 0: atom = "a"
            case 1: atom = "b"
            case 2: atom = "."
            case 3: atom = "[ab]"
            case 4: atom = "[^a]"
            case 5:
                atom =
                    "(" + randomPattern(&generator, depth: depth + 1) + "|"
                    + randomPattern(&generator, depth: depth + 1) + ")"
            default: atom = "(?:" + randomPattern(&generator, depth: depth + 1) + ")"
            }
            switch generator.next() % 6 {
            case 0: atom += "*"
            case 1: atom += "+"
            case 2: atom += "?"
            case 3: atom += "{1,2}"
            default: break
            }
            pattern += atom
        }
        switch generator.next() % 4 {
        case 0: return "^" + pattern
        case 1: return pattern + "$"
        default: return pattern
        }
    }

    @Test(
        "patterns that take a backtracking engine exponential time answer at once",
        .timeLimit(.minutes(1)),
        arguments: ["^(a+)+$", "^(a|a)*$", "^(a*)*$", "(a|aa)+$", "^(.*a){20}$", "(\\w+\\s?)+$"])
    func catastrophicPatterns(_ pattern: String) throws {
        let name = String(repeating: "a", count: 26) + "b" + String(repeating: "a", count: 26) + "!"
        let long = String(repeating: "a", count: 5000) + "!"
        let compiled = try ClusterPattern(pattern)
        // None of them can match a name that ends in "!" after a's (or a "b" in the middle).
        #expect(!compiled.isFound(in: name))
        #expect(!compiled.isFound(in: long))
    }

    @Test(
        "what a linear-time matcher cannot do is refused with the reason",
        arguments: [
            ("(a)\\1", "backreferences"),
            ("(?<n>a)\\k<n>", "backreferences"),
            ("foo(?=bar)", "lookaround"),
            ("foo(?!bar)", "lookaround"),
            ("(?<=a)b", "lookaround"),
            ("(?<!a)b", "lookaround"),
            ("a*+", "possessive"),
            ("(?i)reviews", "flags"),
            ("\\bword\\b", "word boundaries"),
            ("\\p{L}", "\\p is not supported"),
            ("[[:alpha:]]", "POSIX"),
            ("a{1001}", "above 1000"),
            ("a{3,2}", "below the minimum"),
            ("a**", "a quantifier after a quantifier"),
            ("(ab", "missing ')'"),
            ("ab)", "unmatched ')'"),
            ("[ab", "missing ']'"),
            ("*a", "nothing to repeat"),
            ("[z-a]", "higher to a lower"),
            ("(a{1000}){30}", "too large"),
            ("a\\", "trailing backslash"),
        ])
    func refused(_ pattern: String, _ reason: String) {
        #expect(throws: ClusterPattern.Invalid.self) { try ClusterPattern(pattern) }
        do {
            _ = try ClusterPattern(pattern)
        } catch {
            #expect(error.reason.contains(reason), "\(pattern): \(error.reason)")
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failure can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
