// libFuzzer harness for flagwatch's byte-level code: LineFramer, ContainerUnwrapper,
// AccessLogParser (every preset, custom format strings, JSON), and the StreamPipeline/FlagCounts
// that ties them together. Built and run by Fuzz/run.sh, which compiles the three modules with
// -sanitize=fuzzer,address (AddressSanitizer catches any read outside a buffer) and links this
// file against them.
//
// Every input goes through:
//  1. each parser, with the whole input as one line: the parse must be deterministic and every
//     field of the record must lie inside the line; codes, flag counts and durations in range;
//  2. a custom format compiled from the input's first line (when it compiles), which then
//     parses the input's remaining lines;
//  3. LineFramer (feed, and frame in place) in small chunks with a small maximum line length,
//     compared with a straightforward reference splitter: same lines, same too-long lines;
//  4. ContainerUnwrapper (none, cri, docker, auto) over those lines: a payload lies inside the
//     line or in the unwrapper's buffer within the length cap; then every parser over it;
//  5. StreamPipeline (feed and count(inPlace:)), whose FlagCounts must add up: lines =
//     requests + malformed, codes per cluster = requests; with no container wrapper, the counts
//     must equal parsing the reference lines one by one.
//  6. the whole input as an OTLP ExportLogsServiceRequest (OTLPLogsDecoder, bodies as istio and
//     as auto): every record's fields lie inside the input, and the network side's inspect()
//     agrees with the decode: the same units, and `rejected` = the bad_protobuf ones;
//  7. the whole input as an Envoy ALS StreamAccessLogsMessage (EnvoyAccessLogDecoder): every
//     entry's fields lie inside the input, the summary's counts are the entries reported, and
//     entryCount (what a full handoff queue counts as dropped) agrees with the decode.
// A broken invariant is a fatalError, which libFuzzer reports as a crash with the input saved.

import AccessLogParser
import FlagCounting
import LineFraming

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - fixed configuration

/// Custom formats with unusual literals: multi-byte, repeated, prefix-sharing, empty prefix.
let customFormats = [
    #"»%START_TIME%« %RESPONSE_CODE%::%RESPONSE_FLAGS%::%UPSTREAM_CLUSTER% ""%REQ(USER-AGENT)%"" ~%DURATION%~ %ROUTE_NAME%"#,
    #"%RESPONSE_FLAGS%|%RESPONSE_CODE%||%UPSTREAM_CLUSTER_RAW%|||%REQ(X-REQUEST-ID)%|%RESPONSE_CODE_DETAILS%\n"#,
    #"[%START_TIME(%Y/%m/%d %H:%M:%S)%] %DYNAMIC_METADATA(a:b)% "%RESPONSE_FLAGS_LONG%" %UPSTREAM_HOST% %RESPONSE_CODE%"#,
]

/// The parsers, compiled once; each input gets fresh copies (the remembered variant resets).
nonisolated(unsafe) let parserTemplates: [(name: String, parser: AccessLogParser)] = {
    var result: [(String, AccessLogParser)] = [
        ("auto", try! AccessLogParser(format: .auto)),
        ("istio", try! AccessLogParser(format: .istio)),
        ("json", try! AccessLogParser(format: .json(JSONKeyMap()))),
        ("envoy", try! AccessLogParser(format: .envoy)),
        ("nginx-error", try! AccessLogParser(format: .nginxError)),
        ("nginx", try! AccessLogParser(format: .nginx)),
        ("haproxy", try! AccessLogParser(format: .haproxy)),
    ]
    // What StreamPipeline uses: fast plans that decode only code, flags and cluster.
    result.append(("auto-counting", try! AccessLogParser(format: .auto, fields: .counting)))
    result.append(("istio-counting", try! AccessLogParser(format: .istio, fields: .counting)))
    result.append(("json-counting", try! AccessLogParser(format: .json(JSONKeyMap()), fields: .counting)))
    var renamed = JSONKeyMap()
    _ = renamed.setKey("upstreamCluster", forField: "upstream_cluster")
    _ = renamed.setKey("resStatusCode", forField: "response_code")
    _ = renamed.setKey("f", forField: "response_flags")
    result.append(("json-renamed", try! AccessLogParser(format: .json(renamed))))
    for (index, format) in customFormats.enumerated() {
        result.append(("custom\(index)", try! AccessLogParser(format: .custom(format))))
    }
    return result
}()

/// OTLP decoders (one per body format), compiled once; each input gets fresh copies.
nonisolated(unsafe) let otlpDecoderTemplates: [(name: String, decoder: OTLPLogsDecoder, keys: OTLPAttributeKeys)] = [
    (
        "otlp-istio", try! OTLPLogsDecoder(bodyFormat: .istio, fields: .all),
        OTLPAttributeKeys(bodyFormat: .istio, fields: .all)
    ),
    ("otlp-auto-counting", try! OTLPLogsDecoder(bodyFormat: .auto), OTLPAttributeKeys(bodyFormat: .auto)),
]

/// (maxLineLength, bufferSize, chunk sizes) for framing and pipelines.
let framingConfigurations: [(maxLineLength: Int, bufferSize: Int, chunks: [Int])] = [
    (48, 16, [1, 3, 17, 64]),
    (512, 64, [7, 600, 1, 4096]),
    (64 * 1024, 4096, [1 << 20]),
]

// MARK: - entry point

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    // A copy in memory of exactly `size` bytes, so ASan flags a read one past the end.
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 1)
    defer { input.deallocate() }
    if size > 0 { input.baseAddress!.copyMemory(from: data, byteCount: size) }
    let bytes = UnsafeRawBufferPointer(rebasing: input[0..<size])

    checkParsersOnOneLine(bytes)
    checkOTLPRequest(bytes)
    checkALSMessage(bytes)
    checkFormatFromFirstLine(bytes)
    for configuration in framingConfigurations {
        checkFraming(bytes, configuration.maxLineLength, configuration.bufferSize, configuration.chunks)
    }
    for format in [ContainerFormat.none, .cri, .docker, .auto] {
        checkUnwrapping(bytes, format, maxLineLength: 96)
    }
    // Building a pipeline compiles its plans, most of the time an input takes: three of them,
    // CRI or docker by the input's length.
    let small = framingConfigurations[0]
    let medium = framingConfigurations[1]
    let wrapped: ContainerFormat = size.isMultiple(of: 2) ? .cri : .docker
    for (configuration, container) in [(small, ContainerFormat.none), (medium, .auto), (medium, wrapped)] {
        checkPipeline(bytes, container, configuration.maxLineLength, configuration.bufferSize, configuration.chunks)
    }
    return 0
}

// MARK: - parsing

func checkParsersOnOneLine(_ line: UnsafeRawBufferPointer) {
    for template in parserTemplates {
        var parser = template.parser
        checkParse(&parser, line, template.name)
    }
}

/// Parses `line`, checks the record, and checks that parsing again gives the same answer.
@discardableResult
func checkParse(_ parser: inout AccessLogParser, _ line: UnsafeRawBufferPointer, _ name: String) -> MalformedReason? {
    var record = AccessRecord()
    return checkParse(&parser, line, name, record: &record)
}

func checkParse(
    _ parser: inout AccessLogParser, _ line: UnsafeRawBufferPointer, _ name: String, record: inout AccessRecord
) -> MalformedReason? {
    let reason = parser.parse(line, into: &record)
    checkRecord(record, within: line, parsed: reason == nil, name)
    var again = AccessRecord()
    let reasonAgain = parser.parse(line, into: &again)
    require(
        reason == reasonAgain,
        "\(name): parsing twice gave \(String(describing: reason)) then \(String(describing: reasonAgain))")
    if reason == nil {
        require(sameRecord(record, again), "\(name): parsing twice gave different records")
    }
    if line.isEmpty { require(reason == .emptyLine, "\(name): an empty line gave \(String(describing: reason))") }
    return reason
}

/// The input as an Envoy ALS message: entries inside it, entryCount agreeing with the decode.
func checkALSMessage(_ message: UnsafeRawBufferPointer) {
    let decoder = EnvoyAccessLogDecoder(fields: .all)
    var entries = 0
    var thrown = false
    do throws(ProtobufWireDefect) {
        let summary = try decoder.decodeStreamAccessLogsMessage(message) { result in
            entries += 1
            if case .record(let record) = result {
                // ALS flags are booleans: there is no flags text for them to point into.
                checkRecord(record, within: message, parsed: true, "als", flagsHaveText: false)
            }
        }
        require(
            summary.httpEntryCount + summary.tcpEntryCount == entries,
            "als: summary \(summary.httpEntryCount)+\(summary.tcpEntryCount), \(entries) entries reported")
    } catch {
        thrown = true
    }
    let counted = EnvoyAccessLogDecoder.entryCount(in: message)
    // A broken identifier stops the decode but not the count, which skips the identifier whole.
    require(
        thrown ? counted >= entries : counted == entries,
        "als: entryCount \(counted), the decode \(entries) entries\(thrown ? " before a break" : "")")
}

/// The input as an OTLP request: records inside it, inspect() agreeing with the decode.
func checkOTLPRequest(_ message: UnsafeRawBufferPointer) {
    for template in otlpDecoderTemplates {
        var decoder = template.decoder
        var entries = 0
        var badProtobuf = 0
        var thrown = false
        do throws(ProtobufWireDefect) {
            try decoder.decodeExportRequest(message) { result in
                entries += 1
                switch result {
                case .record(let record): checkRecord(record, within: message, parsed: true, template.name)
                case .malformed(let reason): if reason == .badProtobuf { badProtobuf += 1 }
                }
            }
        } catch {
            thrown = true
        }
        let inspection = OTLPLogsDecoder.inspect(message, keys: template.keys)
        let units = entries + (thrown ? 1 : 0)
        let rejected = badProtobuf + (thrown ? 1 : 0)
        require(
            inspection == OTLPLogsInspection(units: units, rejected: rejected),
            "\(template.name): inspect gave \(inspection), the decode \(units) units, \(rejected) bad_protobuf")
        require(
            OTLPLogsDecoder.unitCount(in: message) == units,
            "\(template.name): unitCount \(OTLPLogsDecoder.unitCount(in: message)), the decode \(units) units")
    }
}

func checkRecord(
    _ record: AccessRecord, within line: UnsafeRawBufferPointer, parsed: Bool, _ name: String,
    flagsHaveText: Bool = true
) {
    let views: [(String, FieldView)] = [
        ("startTime", record.startTime), ("responseFlagsText", record.responseFlagsText),
        ("responseCodeDetails", record.responseCodeDetails),
        ("upstreamTransportFailureReason", record.upstreamTransportFailureReason),
        ("upstreamCluster", record.upstreamCluster), ("upstreamHost", record.upstreamHost),
        ("authority", record.authority), ("routeName", record.routeName), ("requestMethod", record.requestMethod),
    ]
    for (field, view) in views {
        require(view.bytes.count >= 0, "\(name): \(field) has a negative count")
        guard !view.isAbsent else { continue }
        require(contains(line, view.bytes), "\(name): \(field) points outside the parsed line")
        if view.hasJSONEscapes {
            let decoded = JSONEscapes.decode(view.bytes)
            require(decoded.count <= view.bytes.count, "\(name): decoding \(field) lengthened it")
        }
    }
    guard parsed else { return }
    require((0...999).contains(record.responseCode), "\(name): response code \(record.responseCode)")
    require((0...5).contains(record.codeClass), "\(name): code class \(record.codeClass)")
    require(record.unknownFlagCount >= 0, "\(name): negative unknown flag count")
    if let duration = record.durationMilliseconds { require(duration >= 0, "\(name): negative duration \(duration)") }
    require(
        record.responseFlags.rawValue >> UInt32(ResponseFlag.allCases.count) == 0, "\(name): flag bits beyond the table"
    )
    var unknown = 0
    record.forEachUnknownFlag { code in
        require(contains(line, code), "\(name): an unknown flag code points outside the line")
        require(!code.isEmpty && ResponseFlag.lookUp(code) == nil, "\(name): a known or empty code was called unknown")
        unknown += 1
    }
    require(
        unknown == record.unknownFlagCount, "\(name): \(unknown) unknown codes seen, \(record.unknownFlagCount) counted"
    )
    if flagsHaveText && (record.unknownFlagCount > 0 || !record.responseFlags.isEmpty) {
        require(!record.responseFlagsText.isAbsent, "\(name): flags without a flags field")
    }
}

func sameRecord(_ a: AccessRecord, _ b: AccessRecord) -> Bool {
    func same(_ x: FieldView, _ y: FieldView) -> Bool {
        x.bytes.baseAddress == y.bytes.baseAddress && x.bytes.count == y.bytes.count
            && x.hasJSONEscapes == y.hasJSONEscapes
    }
    return a.responseCode == b.responseCode && a.responseFlags == b.responseFlags
        && a.unknownFlagCount == b.unknownFlagCount
        && a.durationMilliseconds == b.durationMilliseconds && same(a.startTime, b.startTime)
        && same(a.responseFlagsText, b.responseFlagsText) && same(a.responseCodeDetails, b.responseCodeDetails)
        && same(a.upstreamTransportFailureReason, b.upstreamTransportFailureReason)
        && same(a.upstreamCluster, b.upstreamCluster) && same(a.upstreamHost, b.upstreamHost)
        && same(a.authority, b.authority) && same(a.routeName, b.routeName) && same(a.requestMethod, b.requestMethod)
}

/// The first line as a format string; when it compiles, the other lines are parsed with it.
func checkFormatFromFirstLine(_ bytes: UnsafeRawBufferPointer) {
    let lines = referenceLines(bytes, maxLineLength: Int.max).lines
    guard let first = lines.first, case .line(let formatBytes) = first else { return }
    let format = String(decoding: formatBytes, as: UTF8.self)
    guard var parser = try? AccessLogParser(format: .custom(format)) else { return }
    for line in lines.dropFirst() {
        if case .line(let view) = line { checkParse(&parser, view, "format from the first line") }
    }
}

// MARK: - framing

enum ReferenceLine {
    case line(UnsafeRawBufferPointer)
    case tooLong(length: Int)
}

/// The straightforward framing the framer must agree with: split on `\n`, drop one `\r` before
/// it, lines over the cap are too long; bytes after the last `\n` are not a line yet.
/// `crLines[i]` tells whether line `i` ended in `\r\n`.
func referenceLines(_ bytes: UnsafeRawBufferPointer, maxLineLength: Int) -> (
    lines: [ReferenceLine], pending: Int, crLines: [Bool]
) {
    var lines: [ReferenceLine] = []
    var crLines: [Bool] = []
    var start = 0
    for index in 0..<bytes.count where bytes[index] == 0x0A {
        var end = index
        if end > start && bytes[end - 1] == 0x0D { end -= 1 }
        crLines.append(end != index)
        if end - start > maxLineLength {
            lines.append(.tooLong(length: end - start))
        } else {
            lines.append(.line(UnsafeRawBufferPointer(rebasing: bytes[start..<end])))
        }
        start = index + 1
    }
    return (lines, bytes.count - start, crLines)
}

func checkFraming(_ bytes: UnsafeRawBufferPointer, _ maxLineLength: Int, _ bufferSize: Int, _ chunkSizes: [Int]) {
    let expected = referenceLines(bytes, maxLineLength: maxLineLength)
    for inPlace in [false, true] {
        let framer = LineFramer(maxLineLength: maxLineLength, bufferSize: bufferSize)
        var got: [(line: [UInt8]?, tooLong: Int)] = []
        forEachChunk(bytes, chunkSizes) { chunk in
            let body: (FramedLine) -> Void = { framed in
                switch framed {
                case .line(let line):
                    require(
                        line.count <= maxLineLength, "framer: a \(line.count)-byte line over the cap \(maxLineLength)")
                    require(!line.contains(0x0A), "framer: a line holds a newline")
                    got.append((Array(line), 0))
                case .tooLong(let length):
                    require(length > maxLineLength, "framer: too long at \(length) bytes, cap \(maxLineLength)")
                    got.append((nil, length))
                }
            }
            if inPlace { framer.frame(chunk, body) } else { framer.feed(chunk, body) }
        }
        let mode = inPlace ? "frame(in place)" : "feed"
        require(
            got.count == expected.lines.count,
            "framer \(mode), cap \(maxLineLength), chunks \(chunkSizes): \(got.count) lines, reference \(expected.lines.count)"
        )
        for (index, (gotLine, want)) in zip(got, expected.lines).enumerated() {
            switch want {
            case .line(let line):
                require(
                    gotLine.line != nil && gotLine.line!.elementsEqual(line),
                    "framer \(mode), cap \(maxLineLength), chunks \(chunkSizes): line \(index + 1) differs from the reference "
                        + "(got \(gotLine.line.map { "\($0.count) bytes" } ?? "too long (\(gotLine.tooLong))"), want \(line.count) bytes)"
                )
            case .tooLong(let length):
                require(
                    gotLine.line == nil,
                    "framer \(mode), cap \(maxLineLength): line \(index + 1) should be too long (\(length))")
                require(
                    gotLine.tooLong == length,
                    "framer \(mode), cap \(maxLineLength), chunks \(chunkSizes): line \(index + 1) too long at \(gotLine.tooLong), reference \(length)"
                )
            }
        }
        require(
            framer.pendingByteCount <= max(maxLineLength, expected.pending),
            "framer \(mode): \(framer.pendingByteCount) bytes pending, reference \(expected.pending)")
    }
}

/// Calls `body` with consecutive slices of `bytes`, cycling through `sizes`.
func forEachChunk(_ bytes: UnsafeRawBufferPointer, _ sizes: [Int], _ body: (UnsafeRawBufferPointer) -> Void) {
    var offset = 0
    var turn = 0
    while offset < bytes.count {
        let size = min(sizes[turn % sizes.count], bytes.count - offset)
        body(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)]))
        offset += size
        turn += 1
    }
}

// MARK: - container wrappers

func checkUnwrapping(_ bytes: UnsafeRawBufferPointer, _ format: ContainerFormat, maxLineLength: Int) {
    let unwrapper = ContainerUnwrapper(format: format, maxLineLength: maxLineLength)
    var parsers = parserTemplates.map { $0.parser }
    for case .line(let line) in referenceLines(bytes, maxLineLength: Int.max).lines {
        switch unwrapper.unwrap(line) {
        case .partial:
            require(format != .none, "unwrapper none: a partial line")
        case .malformed(let defect):
            require(format != .none, "unwrapper none: malformed (\(defect))")
            if defect == .badCRILine { require(format == .cri, "unwrapper \(format): bad CRI line") }
            if defect == .badDockerLine { require(format == .docker, "unwrapper \(format): bad docker line") }
        case .line(let payload):
            if format == .none {
                require(
                    payload.baseAddress == line.baseAddress && payload.count == line.count,
                    "unwrapper none: changed the line")
            }
            // A view into the line, or the unwrapper's own bytes (joined / unescaped) within the cap.
            require(
                contains(line, payload) || payload.count <= maxLineLength,
                "unwrapper \(format): a \(payload.count)-byte payload outside the line, cap \(maxLineLength)")
            var outcomes: [String: (MalformedReason?, AccessRecord)] = [:]
            for index in parsers.indices {
                let name = parserTemplates[index].name
                var record = AccessRecord()
                let reason = checkParse(&parsers[index], payload, "\(name) after \(format) unwrap", record: &record)
                outcomes[name] = (reason, record)
            }
            // A plan that decodes only the counting fields checks a subset of what the full
            // plan checks: where the full parser accepts a line, the counting one must accept
            // it too and read the same code, flags and cluster.
            for (full, counting) in [("auto", "auto-counting"), ("istio", "istio-counting"), ("json", "json-counting")]
            {
                guard let (fullReason, fullRecord) = outcomes[full], fullReason == nil,
                    let (countingReason, countingRecord) = outcomes[counting]
                else { continue }
                let line = String(decoding: payload, as: UTF8.self)
                require(
                    countingReason == nil, "\(counting) rejected (\(countingReason!)) a line \(full) accepts: \(line)")
                require(
                    countingRecord.responseCode == fullRecord.responseCode
                        && countingRecord.responseFlags == fullRecord.responseFlags
                        && countingRecord.unknownFlagCount == fullRecord.unknownFlagCount
                        && countingRecord.upstreamCluster.bytes.elementsEqual(fullRecord.upstreamCluster.bytes),
                    "\(counting) and \(full) read different code/flags/cluster: "
                        + "\(countingRecord.responseCode) \(countingRecord.responseFlagsText.rawString) \(countingRecord.upstreamCluster.rawString) vs "
                        + "\(fullRecord.responseCode) \(fullRecord.responseFlagsText.rawString) \(fullRecord.upstreamCluster.rawString): \(line)"
                )
            }
        }
    }
}

// MARK: - pipeline

func checkPipeline(
    _ bytes: UnsafeRawBufferPointer, _ container: ContainerFormat, _ maxLineLength: Int, _ bufferSize: Int,
    _ chunkSizes: [Int]
) {
    let reference = referenceLines(bytes, maxLineLength: maxLineLength)
    var results: [FlagCounts] = []
    for inPlace in [false, true] {
        let counts = FlagCounts()
        let pipeline = try! StreamPipeline(
            format: .auto, containerFormat: container, maxLineLength: maxLineLength, bufferSize: bufferSize,
            counts: counts)
        forEachChunk(bytes, chunkSizes) { chunk in
            if inPlace { pipeline.count(inPlace: chunk) } else { pipeline.feed(chunk) }
        }
        checkCountsAddUp(counts, "pipeline \(container)\(inPlace ? " in place" : "")")
        if container == .none {
            require(
                counts.lines == reference.lines.count,
                "pipeline none: counted \(counts.lines) lines, reference \(reference.lines.count)")
        } else {
            require(
                counts.lines <= reference.lines.count,
                "pipeline \(container): counted \(counts.lines) lines, only \(reference.lines.count) framed")
        }
        results.append(counts)
    }
    require(
        summary(results[0]) == summary(results[1]),
        "pipeline \(container), cap \(maxLineLength), chunks \(chunkSizes): feed and count(inPlace:) counted differently:\n"
            + "  feed: \(summary(results[0]))\n  in place: \(summary(results[1]))")

    if container == .none {
        // The same lines parsed one by one (with the pipeline's parser) must give the same counts.
        let counts = FlagCounts()
        var parser = parserTemplates.first { $0.name == "auto-counting" }!.parser
        var record = AccessRecord()
        for line in reference.lines {
            switch line {
            case .tooLong: counts.count(.tooLong)
            case .line(let view):
                if let reason = parser.parse(view, into: &record) {
                    counts.count(LineDefect(reason))
                } else {
                    counts.count(record)
                }
            }
        }
        require(
            summary(counts) == summary(results[0]),
            "pipeline none, cap \(maxLineLength), chunks \(chunkSizes): counts differ from parsing the lines one by one:\n"
                + "  pipeline: \(summary(results[0]))\n  one by one: \(summary(counts))")
    }

    // Merging is adding.
    let merged = FlagCounts()
    merged.merge(results[0])
    merged.merge(results[1])
    require(
        merged.lines == 2 * results[0].lines && merged.malformedTotal == 2 * results[0].malformedTotal,
        "merge: \(merged.lines) lines from 2 x \(results[0].lines)")
    checkCountsAddUp(merged, "merged counts")
}

func checkCountsAddUp(_ counts: FlagCounts, _ name: String) {
    var requests = 0
    for cluster in counts.allClusters {
        require(
            cluster.requests >= 0 && cluster.codes.count == 6, "\(name): cluster \(cluster.name) counts are malformed")
        require(
            cluster.codes.reduce(0, +) == cluster.requests,
            "\(name): cluster \(cluster.name) codes do not add up to its requests")
        for (flag, count) in cluster.flags {
            require(
                count > 0 && count <= cluster.requests,
                "\(name): cluster \(cluster.name) flag \(flag.shortName) counted \(count)")
        }
        requests += cluster.requests
    }
    require(
        requests + counts.malformedTotal == counts.lines,
        "\(name): \(requests) requests + \(counts.malformedTotal) malformed != \(counts.lines) lines")
}

func summary(_ counts: FlagCounts) -> String {
    var parts = ["lines=\(counts.lines)"]
    for (defect, count) in counts.malformed.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
        parts.append("\(defect.rawValue)=\(count)")
    }
    for cluster in counts.allClusters.sorted(by: { $0.name < $1.name }) {
        let flags = cluster.flagsByName.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(
            separator: ",")
        parts.append("\(cluster.name)=\(cluster.requests)/\(cluster.codes)/\(flags)")
    }
    return parts.joined(separator: " ")
}

// MARK: - helpers

/// Whether `inner` lies inside `outer` (an empty view anywhere counts as inside).
func contains(_ outer: UnsafeRawBufferPointer, _ inner: UnsafeRawBufferPointer) -> Bool {
    guard inner.count > 0 else { return true }
    guard let outerBase = outer.baseAddress, let innerBase = inner.baseAddress else { return false }
    return innerBase >= outerBase && innerBase + inner.count <= outerBase + outer.count
}

func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: " + message()) }
}
