import SystemCalls

/// A configured path with shell wildcards (`/var/log/pods/*/istio-proxy/*.log`), expanded by
/// walking the directory tree one component at a time.
///
/// Besides the matching files, an expansion says which directories must be watched to see new
/// matches appear (every directory whose entries were matched against a component) and which
/// errors stopped the walk (a missing or unreadable directory in the fixed part of the path).
public struct PathPattern: Sendable, Equatable {
    public let pattern: String
    private let components: [String]

    public init(_ pattern: String) {
        self.pattern = pattern
        components = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    public struct Expansion {
        /// Matching paths (not yet checked to be regular files).
        public var paths: [String] = []
        /// Directories whose entries decide what matches.
        public var directories: [String] = []
        /// A directory of the path's fixed part that could not be read, with why.
        public var errors: [(path: String, error: Errno)] = []
    }

    private static func hasWildcard(_ component: String) -> Bool {
        component.contains(where: { $0 == "*" || $0 == "?" || $0 == "[" })
    }

    public func expand() -> Expansion {
        var expansion = Expansion()
        let root = pattern.hasPrefix("/") ? "/" : "."
        walk(directory: root, index: 0, fixedPrefix: true, into: &expansion)
        return expansion
    }

    private func join(_ directory: String, _ name: String) -> String {
        directory == "/" ? "/" + name : directory == "." && !pattern.hasPrefix("./") ? name : directory + "/" + name
    }

    private func walk(directory: String, index: Int, fixedPrefix: Bool, into expansion: inout Expansion) {
        guard index < components.count else { return }
        let component = components[index]
        let isLast = index == components.count - 1
        if !Self.hasWildcard(component) {
            let path = join(directory, component)
            if isLast {
                // A fixed file name: watch its directory to see it created or renamed.
                expansion.directories.append(directory)
                do {
                    _ = try FileStatus(path: path)
                } catch  where error == .noSuchFile || error == .notDirectory {
                    // Not there yet: the watch on its directory sees it created.
                    return
                } catch {
                    // There, but not to be looked at (EACCES on its directory): opening it
                    // reports the error with the path.
                }
                expansion.paths.append(path)
                return
            }
            do {
                let status = try FileStatus(path: path)
                guard status.isDirectory else {
                    if fixedPrefix { expansion.errors.append((path, .notDirectory)) }
                    return
                }
            } catch {
                // Missing: wait for it to be created. Only the fixed part of a pattern is an
                // error; `/var/log/pods/*/istio-proxy` is simply absent from most pods.
                expansion.directories.append(directory)
                if fixedPrefix { expansion.errors.append((path, error)) }
                return
            }
            walk(directory: path, index: index + 1, fixedPrefix: fixedPrefix, into: &expansion)
            return
        }
        let names: [String]
        do {
            names = try FileSystem.directoryEntries(directory)
        } catch {
            expansion.errors.append((directory, error))
            return
        }
        expansion.directories.append(directory)
        for name in names.sorted() where FileSystem.matches(name, pattern: component) {
            let path = join(directory, name)
            if isLast {
                expansion.paths.append(path)
            } else {
                do {
                    if try FileStatus(path: path).isDirectory {
                        walk(directory: path, index: index + 1, fixedPrefix: false, into: &expansion)
                    }
                } catch  where error != .noSuchFile && error != .notDirectory {
                    expansion.errors.append((path, error))
                } catch {
                    // Gone since the directory was read, or a dangling link: nothing to match.
                }
            }
        }
    }
}
