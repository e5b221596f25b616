#!/usr/bin/env python3
"""check-module-order.py: dependencies point upstream only.

Package.swift declares the library targets in the order the data flows (sources → framing →
parser → counts → diagnosis → alerts → exposition/listener/notifier → config → engine → the
executable). This check fails when a module under Sources/ imports a module of this package
that is declared after it, or one its target does not list as a dependency (SwiftPM lets a
module import what a dependency's dependency brings in, which is how the order drifted before).

Usage: scripts/check-module-order.py [PACKAGE_DIR]   (exit 0: in order; 1: the violations)
"""
import os
import re
import sys

TARGET = re.compile(r'\.(target|executableTarget|systemLibrary)\(\s*name:\s*"([^"]+)"')
IMPORT = re.compile(r'^\s*(?:@[\w()]+\s+)*(?:public\s+|internal\s+|package\s+|private\s+|fileprivate\s+)?import\s+(\w+)')


def targets(package_swift):
    """(name, dependency names) of every non-test target, in declaration order."""
    found = []
    matches = list(TARGET.finditer(package_swift))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(package_swift)
        body = package_swift[match.end():end]
        body = body.split(".testTarget(")[0]
        deps = re.search(r'dependencies:\s*\[(.*?)\]\s*,?\s*(?:swiftSettings|path|exclude|resources|\))', body, re.S)
        names = set(re.findall(r'"([^"]+)"', deps.group(1))) if deps else set()
        found.append((match.group(2), names))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "Package.swift")) as file:
        declared = targets(file.read())
    position = {name: index for index, (name, _) in enumerate(declared)}
    problems = []
    for name, dependencies in declared:
        folder = os.path.join(root, "Sources", name)
        if not os.path.isdir(folder):
            continue
        for directory, _, files in os.walk(folder):
            for file_name in sorted(files):
                if not file_name.endswith(".swift"):
                    continue
                path = os.path.join(directory, file_name)
                with open(path) as file:
                    for number, line in enumerate(file, 1):
                        match = IMPORT.match(line)
                        if not match or match.group(1) not in position:
                            continue
                        imported = match.group(1)
                        where = "%s:%d" % (os.path.relpath(path, root), number)
                        if position[imported] >= position[name]:
                            problems.append("%s: %s imports %s, which Package.swift declares after it (downstream)" % (where, name, imported))
                        elif imported not in dependencies:
                            problems.append("%s: %s imports %s without listing it in its target's dependencies" % (where, name, imported))
    for problem in problems:
        print(problem)
    if problems:
        print("%d import(s) against the module order" % len(problems), file=sys.stderr)
        return 1
    print("module order: %d targets, every import points upstream" % len(declared))
    return 0


if __name__ == "__main__":
    sys.exit(main())
