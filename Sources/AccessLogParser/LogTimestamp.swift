/// The time a line's request started, as seconds since the Unix epoch, read from the text a
/// format writes for it (``AccessRecord/startTime``). For `scan --since/--until`: whole seconds
/// are all a window needs.
///
/// The forms read, each with optional fractions of a second:
/// - Envoy's `%START_TIME%` and RFC 3339: `2026-11-22T02:34:27.532Z`, `...+01:00`, `...+0100`
///   (a space for the `T` too);
/// - nginx's `$time_local` and HAProxy's accept date: `22/Nov/2026:02:34:27 +0000`,
///   `22/Nov/2026:02:34:27.532`;
/// - nginx's error log: `2026/11/22 02:34:27`.
///
/// A time without a zone (HAProxy, nginx's error log, an ISO time without one) is taken as UTC,
/// which is what containers and Envoy's `%START_TIME%` use. Anything else gives nil.
public enum LogTimestamp {
    public static func epochSeconds(_ text: UnsafeRawBufferPointer) -> Int? {
        guard text.count >= 19 else { return nil }
        if text[4] == UInt8(ascii: "-") || text[4] == UInt8(ascii: "/") {
            return yearFirst(text)
        }
        if text[2] == UInt8(ascii: "/") { return dayFirst(text) }
        return nil
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM|±HHMM]` or `YYYY/MM/DD HH:MM:SS`.
    private static func yearFirst(_ text: UnsafeRawBufferPointer) -> Int? {
        let dash = text[4]
        guard text[7] == dash,
            let year = digits(text, 0, 4), let month = digits(text, 5, 2), let day = digits(text, 8, 2),
            text[10] == UInt8(ascii: "T") || text[10] == UInt8(ascii: " ")
        else { return nil }
        return timeOfDay(text, from: 11, year: year, month: month, day: day)
    }

    /// `DD/Mon/YYYY:HH:MM:SS[.f][ ±HHMM]`.
    private static func dayFirst(_ text: UnsafeRawBufferPointer) -> Int? {
        guard text.count >= 20, text[6] == UInt8(ascii: "/"), text[11] == UInt8(ascii: ":"),
            let day = digits(text, 0, 2), let month = monthNumber(text, 3), let year = digits(text, 7, 4)
        else { return nil }
        return timeOfDay(text, from: 12, year: year, month: month, day: day)
    }

    /// `HH:MM:SS` at `start`, then fractions and a zone, to the end of `text`.
    private static func timeOfDay(_ text: UnsafeRawBufferPointer, from start: Int, year: Int, month: Int, day: Int)
        -> Int?
    {
        guard text.count >= start + 8, text[start + 2] == UInt8(ascii: ":"), text[start + 5] == UInt8(ascii: ":"),
            let hour = digits(text, start, 2), let minute = digits(text, start + 3, 2),
            let second = digits(text, start + 6, 2),
            (1...12).contains(month), (1...daysIn(month, year)).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = start + 8
        if index < text.count, text[index] == UInt8(ascii: ".") || text[index] == UInt8(ascii: ",") {
            index += 1
            while index < text.count, isDigit(text[index]) { index += 1 }
        }
        if index < text.count, text[index] == UInt8(ascii: " ") { index += 1 }
        var offset = 0
        if index < text.count {
            switch text[index] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                index += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign = text[index] == UInt8(ascii: "-") ? -1 : 1
                let colon = index + 3 < text.count && text[index + 3] == UInt8(ascii: ":")
                guard let hours = digits(text, index + 1, 2), let minutes = digits(text, index + (colon ? 4 : 3), 2),
                    hours < 24, minutes < 60
                else { return nil }
                offset = sign * (hours * 3600 + minutes * 60)
                index += colon ? 6 : 5
            default:
                return nil
            }
        }
        guard index == text.count else { return nil }
        return daysFromCivil(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static let months: [[UInt8]] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ].map { Array($0.utf8) }

    private static func monthNumber(_ text: UnsafeRawBufferPointer, _ at: Int) -> Int? {
        guard at + 3 <= text.count else { return nil }
        for (index, name) in months.enumerated()
        where text[at] == name[0] && text[at + 1] == name[1] && text[at + 2] == name[2] {
            return index + 1
        }
        return nil
    }

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func digits(_ text: UnsafeRawBufferPointer, _ at: Int, _ count: Int) -> Int? {
        guard at >= 0, at + count <= text.count else { return nil }
        var value = 0
        for index in at..<(at + count) {
            guard isDigit(text[index]) else { return nil }
            value = value * 10 + Int(text[index] - 0x30)
        }
        return value
    }
}

extension LogTimestamp {
    /// The same, for a String (arguments, tests).
    public static func epochSeconds(_ text: String) -> Int? {
        var text = text
        return text.withUTF8 { epochSeconds(UnsafeRawBufferPointer($0)) }
    }
}
