import Engine
import FlagCounting
import LogSources
import SystemCalls
import Testing

@Suite struct EngineTests {
    private func sources(_ directory: LogDirectory, _ names: [String], changedParsing: Set<String> = [])
        -> FollowedSources
    {
        var sources = FollowedSources()
        for name in names {
            sources.files.append(
                FileSourceSpec(name: name, patterns: [directory.path + "/\(name)*.log"], startAt: .beginning))
            // `auto` recognises the same lines as `istio`: a change that must not lose a position.
            sources.parsing[name] = SourceParsing(
                format: changedParsing.contains(name) ? .auto : .istio, containerFormat: .none)
        }
        sources.options.readBufferSize = 4096
        return sources
    }

    /// Runs the loop a little longer, for a line counted twice to show.
    private func settle(_ loop: PollLoop) {
        let until = monotonicSeconds() + 0.3
        run(loop) { monotonicSeconds() > until }
    }

    @Test func countsEveryLineOnceAcrossARotation() throws {
        let directory = try LogDirectory()
        defer { directory.remove() }
        try directory.append([Lines.ok, Lines.upstreamFailure], to: "proxy.log")
        let engine = Engine(counts: FlagCounts(), sources: sources(directory, ["proxy"]), logger: quietLogger)
        let loop = PollLoop()
        try engine.start(on: loop)
        run(loop) { engine.counts.lines >= 2 }
        try directory.append([Lines.agentLog, Lines.retriedFailure], to: "proxy.log")
        run(loop) { engine.counts.lines >= 4 }

        // Rotation by rename: the writer finishes its line in the old file, then opens a new one.
        try directory.rename("proxy.log", to: "proxy.log.1")
        try directory.append([Lines.upstreamFailure], to: "proxy.log.1")
        try directory.append([Lines.ok, Lines.upstreamFailure, Lines.ok], to: "proxy.log")
        run(loop) { engine.counts.lines >= 8 }
        settle(loop)

        #expect(engine.counts.lines == 8)
        #expect(
            engine.counts.byCluster == [
                Lines.reviews: ClusterSummary(requests: 3, flags: [:]),
                Lines.payments: ClusterSummary(requests: 3, flags: ["UF": 3]),
                Lines.ledger: ClusterSummary(requests: 1, flags: ["URX": 1, "UF": 1]),
            ])
        let proxy = engine.lines(of: "proxy")
        #expect(proxy?.lines == 8)
        #expect(proxy?.malformed == ["not_access_log": 1])
        #expect(engine.sourceActivity().first?.statistics?.errors == [:])
    }

    @Test func aReloadKeepsCountsAndHandsPositionsOverWithoutLosingOrRecountingALine() throws {
        let directory = try LogDirectory()
        defer { directory.remove() }
        try directory.append([Lines.ok, Lines.upstreamFailure], to: "front.log")
        try directory.append([Lines.retriedFailure, Lines.agentLog], to: "back.log")
        try directory.append([Lines.ok], to: "extra.log")
        let engine = Engine(counts: FlagCounts(), sources: sources(directory, ["front", "back"]), logger: quietLogger)
        let loop = PollLoop()
        try engine.start(on: loop)
        run(loop) { engine.counts.lines >= 4 }
        #expect(engine.counts.lines == 4)

        // Written while the old followers still hold the files: they read them before handing over.
        try directory.append([Lines.upstreamFailure], to: "front.log")
        try directory.append([Lines.ok], to: "back.log")
        // `front` unchanged, `back` parsed differently, `extra` new; all start at the beginning,
        // so a position not handed over would count the files' lines again.
        let reloaded = sources(directory, ["front", "back", "extra"], changedParsing: ["back"])
        engine.reload(reloaded)
        #expect(engine.counts.lines == 6)
        #expect(engine.sources == reloaded)

        try directory.append([Lines.retriedFailure], to: "front.log")
        run(loop) { engine.counts.lines >= 8 }
        settle(loop)

        #expect(engine.counts.lines == 8)
        #expect(
            engine.counts.byCluster == [
                Lines.reviews: ClusterSummary(requests: 3, flags: [:]),
                Lines.payments: ClusterSummary(requests: 2, flags: ["UF": 2]),
                Lines.ledger: ClusterSummary(requests: 2, flags: ["URX": 2, "UF": 2]),
            ])
        #expect(engine.sourceActivity().map(\.name) == ["front", "back", "extra"])
        #expect(engine.lines(of: "front")?.lines == 4)
        #expect(engine.lines(of: "front")?.malformed == [:])
        #expect(engine.lines(of: "back")?.lines == 3)
        #expect(engine.lines(of: "back")?.malformed == ["not_access_log": 1])
        #expect(engine.lines(of: "extra")?.lines == 1)
        // The statistics carried over too: bytes read by both followers of `front`.
        let front = engine.sourceActivity().first { $0.name == "front" }?.statistics
        let frontBytes = [Lines.ok, Lines.upstreamFailure, Lines.upstreamFailure, Lines.retriedFailure].map {
            $0.utf8.count + 1
        }.reduce(0, +)
        #expect(front?.bytesRead == UInt64(frontBytes))
    }
}
