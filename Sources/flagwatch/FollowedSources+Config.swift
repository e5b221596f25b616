import ConfigFile
import Engine

extension FlagwatchConfig {
    /// What the engine follows for this config: the one place a source's format and container
    /// settings become its parsing (at start, at each reload, and for `scan --follow --config`).
    var followedSources: FollowedSources {
        var parsing: [String: SourceParsing] = [:]
        for source in sources {
            parsing[source.name] = SourceParsing(format: source.logFormat, containerFormat: source.containerFormat)
        }
        return FollowedSources(
            files: fileSourceSpecs, journals: journalSourceSpecs, receivers: receiverSourceSpecs, parsing: parsing,
            options: followOptions)
    }
}
