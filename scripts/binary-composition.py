#!/usr/bin/env python3
"""What the release binary is made of, from the linker's map (`make release` writes
.build/flagwatch-release.map): bytes per component that end up in the binary (debug sections
left out: `strip` removes them), and which object files pull full Foundation (and with it ICU)
into the link.

    scripts/binary-composition.py [.build/flagwatch-release.map] [--all]
"""
import argparse
import collections
import re
import sys

FULL_FOUNDATION = ("Foundation", "CoreFoundation", "FoundationInternationalization", "_FoundationICU",
                   "FoundationNetworking", "FoundationXML")
SWIFT_RUNTIME = ("swiftCore", "swift_Concurrency", "swift_StringProcessing", "swift_RegexParser",
                 "dispatch", "swiftDispatch", "BlocksRuntime", "swiftSynchronization", "swift_Volatile",
                 "swiftGlibc", "swift_Builtin_float", "swift_math", "swiftRuntime", "swiftrt")
OWN_MODULES = ("AccessLogParser", "AccessLogReceiver", "Alerting", "CLinuxShims", "ConfigFile", "DaemonLogging",
               "Diagnosis", "Engine", "Exposition", "FlagCounting", "HTTPListener", "LineFraming", "LogSources",
               "Notifier", "SystemCalls", "flagwatch")


def component(path):
    """`module NAME` for an object of a SwiftPM target, `lib NAME` for a static archive."""
    match = re.search(r"/([^/]+)\.build/", path)
    if match:
        return "module", match.group(1)
    match = re.search(r"/lib([^/(]+)\.a\(", path)
    if match:
        return "lib", match.group(1)
    return "other", path.rsplit("/", 1)[-1]


def group(kind, name):
    if kind == "lib" and name == "_FoundationICU":
        return "ICU (_FoundationICU: code and its 34 MB data table)"
    if kind == "lib" and name in FULL_FOUNDATION:
        return "Foundation, CoreFoundation, FoundationInternationalization"
    if kind == "lib" and name in ("FoundationEssentials", "_FoundationCollections", "_FoundationCShims"):
        return "FoundationEssentials"
    if kind == "lib" and name in SWIFT_RUNTIME:
        return "Swift runtime (stdlib, concurrency, regex, dispatch)"
    if kind == "module" and name in OWN_MODULES:
        return "flagwatch's own modules"
    if kind == "module" and name.startswith("CNIOBoringSSL"):
        return "BoringSSL (swift-nio-ssl)"
    if kind == "module" and (name.startswith("NIO") or name.startswith("CNIO") or name in (
            "AsyncHTTPClient", "CAsyncHTTPClient", "Atomics", "DequeModule", "InternalCollectionsUtilities",
            "ContainersPreview", "Algorithms", "RealModule", "Configuration", "Tracing", "Instrumentation",
            "ServiceContextModule", "ServiceContextModuleCompatibility", "CoreMetrics", "SystemPackage", "CSystem")):
        return "SwiftNIO, AsyncHTTPClient and their dependencies"
    if kind == "module" and name in ("Yams", "CYaml"):
        return "Yams"
    if kind == "module" and (name.startswith("GRPC") or name.startswith("CGRPC") or name in (
            "Crypto", "CCryptoBoringSSL", "CCryptoBoringSSLShims", "CryptoBoringWrapper", "_CryptoExtras",
            "CryptoExtras", "X509", "SwiftASN1", "_CertificateInternals", "AsyncAlgorithms", "ServiceLifecycle",
            "OrderedCollections", "CXKCP")):
        return "grpc-swift 2, its NIO transport and their dependencies (swift-crypto, X509)"
    return "argument-parser, swift-log, C shims"


def parse(map_text):
    included = map_text.split("\nDiscarded input sections", 1)[0]
    memory = map_text.split("\nMemory map", 1)[1] if "\nMemory map" in map_text else map_text
    sizes = collections.Counter()
    section = None
    for line in memory.splitlines():
        header = re.match(r"^ (\.\S+)\s*$", line)
        if header:
            section = header.group(1)
            continue
        entry = re.match(r"^ (\.\S+)?\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(/\S.*)$", line)
        name = entry and (entry.group(1) or section)
        section = None
        if not entry or name is None or name.startswith((".debug", ".comment", ".note", ".symtab", ".strtab")):
            continue
        size = int(entry.group(3), 16)
        if size:
            sizes[component(entry.group(4).strip())] += size
    # "Archive member included because of file (symbol)": the member, then the file that asked.
    pullers = collections.Counter()
    lines = included.splitlines()
    for index, line in enumerate(lines):
        member = re.match(r"^/\S*/lib([^/(]+)\.a\(", line)
        if not member or member.group(1) not in FULL_FOUNDATION:
            continue
        asker = lines[index + 1].strip() if index + 1 < len(lines) else ""
        kind, name = component(asker.split(" (", 1)[0])
        if not (kind == "lib" and name in FULL_FOUNDATION + ("swiftCore", "FoundationEssentials")):
            pullers["%s %s" % (kind, name)] += 1
    return sizes, pullers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("map", nargs="?", default=".build/flagwatch-release.map")
    parser.add_argument("--all", action="store_true", help="every component, not only the groups")
    options = parser.parse_args()
    try:
        text = open(options.map, encoding="utf-8", errors="replace").read()
    except OSError as error:
        sys.exit("binary-composition: %s (run make release first)" % error)
    sizes, pullers = parse(text)
    total = sum(sizes.values())
    groups = collections.Counter()
    for (kind, name), size in sizes.items():
        groups[group(kind, name)] += size
    print("%-62s %8s %6s" % ("component (sections kept in the binary, debug info left out)", "MB", "share"))
    for name, size in groups.most_common():
        print("%-62s %8.1f %5.0f%%" % (name, size / 1e6, 100.0 * size / total))
    print("%-62s %8.1f" % ("total", total / 1e6))
    if options.all:
        print()
        for (kind, name), size in sizes.most_common():
            print("%8.2f MB  %s %s" % (size / 1e6, kind, name))
    print()
    if pullers:
        print("full Foundation (and so ICU) is linked because of: " +
              ", ".join("%s (%d archive members)" % item for item in pullers.most_common()))
    else:
        print("full Foundation is not linked")


if __name__ == "__main__":
    main()
