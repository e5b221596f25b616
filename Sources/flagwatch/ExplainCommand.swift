import AccessLogParser
import ArgumentParser
import Diagnosis
import Exposition
import LineFraming
import SystemCalls

enum ExplainOutput: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract:
            "Explain response flags (meaning, causes, how to tell them apart), or diagnose one access-log line or one reply body of Envoy's.",
        discussion: """
            Examples:
              flagwatch explain UF
              flagwatch explain UpstreamConnectionFailure
              flagwatch explain UF,URX
              flagwatch explain '[2026-11-22T02:34:28.577Z] "GET /token HTTP/1.1" 503 UF ...'
              kubectl logs deploy/api -c istio-proxy | grep ' UF ' | head -1 | flagwatch explain -
              flagwatch explain 'upstream connect error or disconnect/reset before headers. reset reason: connection termination'
              curl -s http://api.default:8080/ | flagwatch explain -
            """
    )

    @Argument(
        help: ArgumentHelp(
            "A flag (UF, UpstreamConnectionFailure, any case), a comma list (UF,URX), a whole access-log line, the body of a reply Envoy made itself (what curl or a gRPC error shows: 'no healthy upstream', 'upstream connect error or disconnect/reset before headers. ...'), or '-' to read the line or body from standard input.",
            valueName: "flag|line|-"))
    var input: String

    @Option(
        help:
            "For a line: auto, envoy, istio, json, nginx-error, nginx, haproxy, or an Envoy format string (as scan takes)."
    )
    var format: String = "auto"

    @Option(help: "For a line: its container log wrapper: none, cri, docker, or auto.")
    var containerFormat: ContainerFormat = .auto

    @Option(help: "text or json.")
    var output: ExplainOutput = .text

    func run() throws {
        let line: String?
        if input == "-" {
            guard let read = Self.readFirstLine() else {
                throw CommandFailure(message: "explain -: standard input has no line", exitStatus: 1)
            }
            line = read
        } else if Self.isLine(input) {
            line = input
        } else {
            line = nil
        }
        guard let line else { return try explainFlags() }
        // What a client saw (curl's body, a gRPC error message) is no log line: Envoy's words
        // for its own replies are recognised first.
        if let reply = Explainer.explain(replyBody: line) {
            print(output == .json ? ExplainReport.json(reply) : ExplainReport.text(reply), terminator: "")
            return
        }
        let explanation: LineExplanation
        do {
            explanation = try Explainer.explain(
                line: line, format: LogFormat(argument: format), containerFormat: containerFormat)
        } catch .badFormat(let message) {
            throw CommandFailure(message: "--format: \(message)")
        } catch .malformed(let reason) {
            throw CommandFailure(
                message:
                    "the line is not an access-log line of format \(format) (\(reason)); see 'flagwatch explain --help' for --format",
                exitStatus: 1)
        }
        print(output == .json ? ExplainReport.json(explanation) : ExplainReport.text(explanation), terminator: "")
    }

    private func explainFlags() throws {
        switch Explainer.flags(named: input) {
        case .success(let flags):
            let explanations = flags.map(FlagExplanation.init)
            print(
                output == .json ? ExplainReport.json(explanations) : ExplainReport.text(explanations), terminator: "")
        case .failure(let unknown):
            var message = "unknown response flag '\(UntrustedText.printable(unknown.name))'"
            let suggestions = unknown.suggestions
            if !suggestions.isEmpty {
                message +=
                    "; did you mean "
                    + suggestions.map { "\($0.shortName) (\($0.longName))" }.joined(separator: ", ") + "?"
            }
            throw CommandFailure(message: message + " ('flagwatch explain' takes short or long names, see docs/cli.md)")
        }
    }

    /// A flag list is words of letters between commas, spaces around them allowed (`UF, URX`);
    /// anything else is a line (every text format has a space inside a field list, JSON a `{`).
    static func isLine(_ text: String) -> Bool {
        !text.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { part in
            let word = part.drop { $0 == " " }.reversed().drop { $0 == " " }
            return word.allSatisfy { $0.isASCII && $0.isLetter }
        }
    }

    /// The first non-blank line of standard input, read only as far as it ends (the input may
    /// be a `kubectl logs -f` that never does), and at most 64 KiB: scan's default line cap.
    static func readFirstLine() -> String? {
        func isBlank(_ line: ArraySlice<UInt8>) -> Bool { line.allSatisfy { $0 == 0x0D || $0 == 0x20 } }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var ended = false
        while true {
            // Blank lines before the first one are skipped.
            while let newline = bytes.firstIndex(of: 0x0A), isBlank(bytes[..<newline]) {
                bytes.removeSubrange(...newline)
            }
            if let newline = bytes.firstIndex(of: 0x0A) {
                return String(decoding: bytes[..<newline], as: UTF8.self)
            }
            if ended || bytes.count >= 64 * 1024 { break }
            // A read error ends the input like its end does: what was read is the line.
            let count = buffer.withUnsafeMutableBytes { (try? FileDescriptor.standardInput.read(into: $0)) ?? 0 }
            if count == 0 { ended = true } else { bytes += buffer[0..<count] }
        }
        return isBlank(bytes[...]) ? nil : String(decoding: bytes, as: UTF8.self)
    }
}

/// The explain command's two outputs. Every text from the line (cluster, host, details,
/// reasons, and the diagnosis that quotes them) is escaped for the output it goes to.
enum ExplainReport {
    static func text(_ explanations: [FlagExplanation]) -> String {
        explanations.map(text).joined(separator: "\n")
    }

    static func text(_ explanation: FlagExplanation) -> String {
        let flag = explanation.flag
        var out = "\(flag.shortName)  \(flag.longName)\n"
        out += "  \(flag.meaning).\n"
        out +=
            "  Since Envoy \(flag.sinceEnvoy) (long name since 1.28); \(flag.isSetForTCP ? "HTTP and TCP" : "HTTP only").\n"
        if let codes = explanation.statusCodes { out += "  Status codes: \(codes).\n" }
        if explanation.causes.isEmpty {
            out +=
                "  Causes: flagwatch's diagnosis names none for this flag; the line's response code details say more.\n"
            return out
        }
        out += "  Causes, and how to tell them apart:\n"
        for cause in explanation.causes {
            out += "  - \(cause.cause): \(cause.evidence).\n"
            for step in cause.nextSteps { out += "      \(step)\n" }
        }
        return out
    }

    static func text(_ line: LineExplanation) -> String {
        func field(_ name: String, _ value: String?) -> String {
            "  " + (name + ":").padding(toLength: 27, withPad: " ", startingAt: 0)
                + UntrustedText.printable(value ?? "-") + "\n"
        }
        var out = "Line (\(line.format)):\n"
        out += field("upstream cluster", line.upstreamCluster)
        out += field("response code", String(line.responseCode))
        let flags = line.flags.map(\.shortName) + line.unknownFlags
        out += field("flags", flags.isEmpty ? "-" : flags.joined(separator: ","))
        out += field("response code details", line.responseCodeDetails)
        out += field("transport failure reason", line.upstreamTransportFailureReason)
        out += field("upstream host", line.upstreamHost)
        if let diagnosis = line.diagnosis {
            out += "\nDiagnosis: \(diagnosis.cause.rawValue) (\(diagnosis.flag.shortName))\n"
            out += "  " + UntrustedText.printable(diagnosis.likelyCause) + "\n"
            if !diagnosis.nextSteps.isEmpty {
                out += "  Next steps:\n"
                for step in diagnosis.nextSteps { out += "    " + UntrustedText.printable(step) + "\n" }
            }
        } else {
            out += "\nDiagnosis: none, the line has no Envoy flag.\n"
        }
        if !line.explanations.isEmpty { out += "\n" + text(line.explanations) }
        return out
    }

    static func json(_ explanations: [FlagExplanation]) -> String {
        "{\"flags\":[" + explanations.map(json).joined(separator: ",") + "]}\n"
    }

    static func json(_ explanation: FlagExplanation) -> String {
        let flag = explanation.flag
        var out = "{\"short\":\(string(flag.shortName)),\"long\":\(string(flag.longName))"
        out += ",\"meaning\":\(string(flag.meaning)),\"since_envoy\":\(string(flag.sinceEnvoy))"
        out += ",\"tcp\":\(flag.isSetForTCP),\"status_codes\":\(explanation.statusCodes.map(string) ?? "null")"
        out += ",\"causes\":["
        out += explanation.causes.map {
            "{\"cause\":\(string($0.cause)),\"evidence\":\(string($0.evidence)),\"next_steps\":[\($0.nextSteps.map(string).joined(separator: ","))]}"
        }.joined(separator: ",")
        return out + "]}"
    }

    static func json(_ line: LineExplanation) -> String {
        var out = "{\"line\":{\"format\":\(string(line.format))"
        out += ",\"upstream_cluster\":\(string(line.upstreamCluster)),\"response_code\":\(line.responseCode)"
        out += ",\"response_flags\":[\(line.flags.map { string($0.shortName) }.joined(separator: ","))]"
        out += ",\"unknown_flags\":[\(line.unknownFlags.map(string).joined(separator: ","))]"
        out += ",\"response_code_details\":\(line.responseCodeDetails.map(string) ?? "null")"
        out += ",\"upstream_transport_failure_reason\":\(line.upstreamTransportFailureReason.map(string) ?? "null")"
        out += ",\"upstream_host\":\(line.upstreamHost.map(string) ?? "null")},\"diagnosis\":"
        out += json(line.diagnosis)
        return out + ",\"flags\":[" + line.explanations.map(json).joined(separator: ",") + "]}\n"
    }

    private static func json(_ diagnosis: Diagnosis?) -> String {
        guard let diagnosis else { return "null" }
        var out = "{\"flag\":\(string(diagnosis.flag.shortName)),\"cause\":\(string(diagnosis.cause.rawValue))"
        out += ",\"likely_cause\":\(string(diagnosis.likelyCause))"
        out += ",\"next_steps\":[\(diagnosis.nextSteps.map(string).joined(separator: ","))]"
        out += ",\"scope\":\(string(diagnosis.scope.rawValue)),\"hosts\":["
        out += diagnosis.hosts.map { "{\"host\":\(string($0.host)),\"count\":\($0.count)}" }.joined(separator: ",")
        return out + "]}"
    }

    static func text(_ reply: ReplyBodyExplanation) -> String {
        func field(_ name: String, _ value: String?) -> String {
            "  " + (name + ":").padding(toLength: 27, withPad: " ", startingAt: 0)
                + UntrustedText.printable(value ?? "-") + "\n"
        }
        let body = reply.body
        var out = "Envoy's own reply (not the upstream's):\n"
        out += "  " + UntrustedText.printable(body.text) + "\n"
        out += "  " + UntrustedText.printable(body.meaning) + ".\n\n"
        out += field("flags", body.flags.isEmpty ? "-" : body.flags.map(\.shortName).joined(separator: ","))
        out += field("status (Envoy's default)", String(body.defaultStatus))
        out += field("response code details", body.responseCodeDetails)
        out += field("transport failure reason", body.transportFailureReason)
        if let diagnosis = reply.diagnosis {
            out += "\nDiagnosis: \(diagnosis.cause.rawValue) (\(diagnosis.flag.shortName))\n"
            out += "  " + UntrustedText.printable(diagnosis.likelyCause) + "\n"
            out +=
                "  The access log line of the request names the upstream cluster and host: "
                + "'flagwatch explain <line>' or 'flagwatch scan' on the log say which one.\n"
            if !diagnosis.nextSteps.isEmpty {
                out += "  Next steps:\n"
                for step in diagnosis.nextSteps { out += "    " + UntrustedText.printable(step) + "\n" }
            }
        }
        if !reply.explanations.isEmpty { out += "\n" + text(reply.explanations) }
        return out
    }

    static func json(_ reply: ReplyBodyExplanation) -> String {
        let body = reply.body
        var out = "{\"reply_body\":{\"text\":\(string(body.text)),\"meaning\":\(string(body.meaning))"
        out += ",\"response_flags\":[\(body.flags.map { string($0.shortName) }.joined(separator: ","))]"
        out += ",\"default_status\":\(body.defaultStatus),\"retried\":\(body.retried)"
        out += ",\"reset_reason\":\(body.resetReason.map(string) ?? "null")"
        out += ",\"upstream_transport_failure_reason\":\(body.transportFailureReason.map(string) ?? "null")"
        out += ",\"response_code_details\":\(string(body.responseCodeDetails))},\"diagnosis\":"
        out += json(reply.diagnosis)
        return out + ",\"flags\":[" + reply.explanations.map(json).joined(separator: ",") + "]}\n"
    }

    private static func string(_ value: String) -> String { UntrustedText.jsonLiteral(value) }
}
