import ConfigFile
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a file with open/write (the tests do not need Foundation for it).
enum FileManagerless {
    static func write(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}

/// The error `text` (as the file `f.yaml`) gives, or nil when it loads.
func configError(_ text: String) -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(text, file: "f.yaml")
        return nil
    } catch {
        return error
    }
}

@Suite struct ConfigLoaderTests {
    private let valid = """
        listen: "127.0.0.1:9817"
        state_dir: /var/lib/flagwatch
        sources:
          - name: envoy
            files: ["/var/log/envoy/access*.log"]
            format: istio
            container_format: none
            start_at: end
          - name: journal
            journald: { matches: ["_SYSTEMD_UNIT=envoy.service"] }
            format: envoy
        windows: [1m, 5m, 15m]
        limits: { max_clusters: 5000, idle_series_expiry: 30m }
        """

    @Test func theIssueExampleLoads() throws {
        let config = try ConfigLoader.parse(valid)
        #expect(config.sources.count == 2)
        #expect(config.sources[0].input == .files(["/var/log/envoy/access*.log"]))
        #expect(config.sources[1].input == .journald(matches: ["_SYSTEMD_UNIT=envoy.service"], directory: nil))
        #expect(config.windows.map(\.seconds) == [60, 300, 900])
        #expect(config.limits.idleSeriesExpiry.seconds == 1800)
        #expect(ListenAddress(config.listen) == ListenAddress("127.0.0.1:9817"))
    }

    @Test func jsonLoadsToo() throws {
        let config = try ConfigLoader.parse(
            #"{"sources": [{"name": "a", "files": ["/x.log"], "format": "json"}], "windows": ["30s"]}"#)
        #expect(config.sources[0].format == "json")
        #expect(config.windows.map(\.seconds) == [30])
    }

    private func error(_ text: String) -> ConfigError? { configError(text) }

    @Test func unknownKeyNamesKeyAndLine() {
        let found = error(
            valid.replacingOccurrences(of: "    start_at: end", with: "    start_at: end\n    strat_at: x"))
        #expect(found?.key == "sources[0].strat_at")
        #expect(found?.line == 9)
        #expect(found?.description.hasPrefix("f.yaml:9: sources[0].strat_at: unknown key") == true)
    }

    @Test func wrongTypesAndImpossibleValues() {
        let maxClusters = error(valid.replacingOccurrences(of: "max_clusters: 5000", with: "max_clusters: lots"))
        #expect(maxClusters?.key == "limits.max_clusters")
        #expect(maxClusters?.line == 13)
        let zero = error(valid.replacingOccurrences(of: "max_clusters: 5000", with: "max_clusters: 0"))
        #expect(zero?.key == "limits.max_clusters")
        let window = error(valid.replacingOccurrences(of: "[1m, 5m, 15m]", with: "[1m, 5x]"))
        #expect(window?.key == "windows[1]")
        #expect(window?.line == 12)
        let format = error(valid.replacingOccurrences(of: "format: istio", with: "format: '%START_TIME% %BOGUS%'"))
        #expect(format?.key == "sources[0].format")
        let container = error(
            valid.replacingOccurrences(of: "container_format: none", with: "container_format: podman"))
        #expect(container?.key == "sources[0].container_format")
        let listen = error(valid.replacingOccurrences(of: "\"127.0.0.1:9817\"", with: "\"localhost\""))
        #expect(listen?.key == "listen")
        #expect(listen?.line == 1)
        let match = error(valid.replacingOccurrences(of: "_SYSTEMD_UNIT=envoy.service", with: "unit envoy"))
        #expect(match?.key == "sources[1].journald.matches")
        let duplicate = error(valid.replacingOccurrences(of: "name: journal", with: "name: envoy"))
        #expect(duplicate?.key == "sources")
        let both = error(
            valid.replacingOccurrences(of: "    format: envoy", with: "    format: envoy\n    files: [/a]"))
        #expect(both?.key?.hasPrefix("sources[1]") == true)
    }

    @Test func badYAMLHasALine() {
        let found = error("sources:\n  - name: a\n    files: [unclosed\n")
        #expect(found?.line != nil)
        #expect(found?.reason.contains("not valid YAML") == true)
    }

    @Test("a config file over 1 MiB is refused with its size, before any parsing; a directory or a missing file too")
    func oversizedAndUnreadableFiles() throws {
        let directory = "/tmp/flagwatch-config-test-\(getpid())"
        mkdir(directory, 0o700)
        defer {
            _ = unlink(directory + "/big.yaml")
            _ = unlink(directory + "/ok.yaml")
            rmdir(directory)
        }
        let padding = String(repeating: "# padding\n", count: (1 << 20) / 10 + 1)
        #expect(FileManagerless.write(directory + "/big.yaml", valid + "\n" + padding))
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: directory + "/big.yaml") }
        do {
            _ = try ConfigLoader.load(path: directory + "/big.yaml")
        } catch {
            #expect(error.reason == "larger than 1 MiB: a flagwatch config is a few KiB")
        }
        #expect(
            FileManagerless.write(directory + "/ok.yaml", valid + "\n" + String(repeating: "# padding\n", count: 1000)))
        #expect(try ConfigLoader.load(path: directory + "/ok.yaml").sources.count == 2)
        do {
            _ = try ConfigLoader.load(path: directory)
            Issue.record("a directory loaded")
        } catch {
            #expect(error.reason.hasPrefix("cannot read: "))
        }
        do {
            _ = try ConfigLoader.load(path: directory + "/missing.yaml")
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.reason == "cannot read: No such file or directory")
        }
    }

    @Test func durations() {
        #expect(ConfigDuration(parsing: "1h30m")?.seconds == 5400)
        #expect(ConfigDuration(parsing: "500ms")?.seconds == 0.5)
        #expect(ConfigDuration(parsing: "10")?.seconds == 10)
        #expect(ConfigDuration(parsing: "5x") == nil)
        #expect(ConfigDuration(parsing: "m") == nil)
        #expect(ConfigDuration(seconds: 900).description == "15m")
        #expect(ConfigDuration(seconds: 5400).description == "1h30m")
    }
}
