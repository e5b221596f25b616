/// A duration in the config file: `500ms`, `30s`, `5m`, `1h`, `1h30m`, `1d`, or a plain number
/// of seconds.
public struct ConfigDuration: Sendable, Equatable, Hashable, Comparable, CustomStringConvertible, Decodable {
    public var seconds: Double

    public init(seconds: Double) { self.seconds = seconds }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool { lhs.seconds < rhs.seconds }

    /// Parses `1h30m`-style text; nil if it is not one.
    public init?(parsing text: String) {
        if let plain = Double(text), plain.isFinite {
            seconds = plain
            return
        }
        var total = 0.0
        var number = ""
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while let character = rest.first {
            if character.isASCII && (character.isNumber || character == ".") {
                number.append(character)
                rest = rest.dropFirst()
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
            guard let unit = units.first(where: { rest.hasPrefix($0.0) && !(rest.hasPrefix("ms") && $0.0 == "m") })
            else { return nil }
            total += value * unit.1
            rest = rest.dropFirst(unit.0.count)
        }
        guard number.isEmpty else { return nil }
        seconds = total
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Double.self) {
            seconds = number
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ConfigDuration(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a duration (use e.g. 30s, 5m, 1h)")
        }
        self = parsed
    }

    /// `90` → `1m30s`, as Prometheus writes durations (also the `window` label's value).
    public var description: String {
        if seconds < 1 && seconds > 0 { return "\(Int((seconds * 1000).rounded()))ms" }
        var remaining = Int(seconds.rounded())
        if remaining == 0 { return "0s" }
        var text = ""
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] where remaining >= size {
            text += "\(remaining / size)\(unit)"
            remaining %= size
        }
        return text
    }
}
