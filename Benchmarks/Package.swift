// swift-tools-version: 6.3
//
// flagwatch's micro-benchmarks (ordo-one/benchmark): parser throughput and allocations per
// line. A package of its own so the main package does not depend on the benchmark framework.
// Run with `Benchmarks/run.sh` (see there), or from this directory: `swift package benchmark`.
//
// Tools version 6.3: what benchmark 1.38.1's own manifest needs on this toolchain (Swift 6.3).
// The framework's default traits are MallocInterposer + RuntimeInterposer. Only the malloc
// interposer is wanted (it provides the `mallocCountTotal` metric); naming the traits leaves
// out the runtime interposer (ARC counting on Linux with Swift 6.3), a separate package that
// is then not even resolved, and is not among the packages this machine can fetch.
import PackageDescription

let package = Package(
    name: "flagwatch-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "flagwatch", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ParserBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "AccessLogParser", package: "flagwatch"),
                .product(name: "LineFraming", package: "flagwatch"),
                .product(name: "FlagCounting", package: "flagwatch"),
            ],
            path: "Benchmarks/ParserBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
