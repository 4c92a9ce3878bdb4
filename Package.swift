// swift-tools-version: 6.1
// The manifest is the architecture: each target is one layer, and the arrows between them
// only point down. Wire codecs (JSON/QMP, NBDWire) and the block layer (BlockCore,
// BlockDrivers) know nothing of sockets; only HighWaterDaemon, the QMP client library
// (shared by `autoextend` and `watch`) and AutoExtend's service (metrics, processes) touch
// NIOPosix.
import PackageDescription

let package = Package(
    name: "HighWater",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "highwater", targets: ["highwater"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // JSON values and QEMU's JSON dialect (streaming parser, ASCII serializer).
        .target(name: "JSON"),
        // QAPI: keyval (command line) syntax and typed visiting of JSON arguments with
        // QEMU's exact error texts.
        .target(name: "QAPI", dependencies: ["JSON"]),
        // QMP protocol: framing, greeting, negotiation, dispatch state machine, events.
        .target(name: "QMP", dependencies: ["JSON"]),
        // Block layer core: nodes, graph, permissions, request validation, statistics,
        // write thresholds, events. No I/O of its own.
        .target(name: "BlockCore"),
        // The system zlib, for reading compressed qcow2 clusters.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        // Block drivers: file, host_device, raw, null-co, qcow2.
        .target(name: "BlockDrivers", dependencies: ["BlockCore", "CZlib"]),
        // NBD wire codec: handshake, options, requests, replies as pure values.
        .target(name: "NBDWire", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // NBD server: per-connection state machine and channel handler over the block layer.
        .target(name: "NBDServer", dependencies: [
            "NBDWire", "BlockCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // QMP command handlers: thin adapters from QAPI arguments to the block layer and exports.
        .target(name: "QMPCommands", dependencies: [
            "JSON", "QAPI", "QMP", "BlockCore", "BlockDrivers", "NBDServer",
        ]),
        // Image tools (`highwater img`): create, info and check for raw and qcow2 files, with
        // qemu-img's options, texts and exit codes.
        .target(name: "ImageTools", dependencies: ["BlockCore", "BlockDrivers", "JSON", "QAPI"]),
        // Composition root: command line processing, sockets, services, signals.
        .target(name: "HighWaterDaemon", dependencies: [
            "JSON", "QAPI", "QMP", "QMPCommands", "BlockCore", "BlockDrivers", "NBDServer", "CMalloc",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // A QMP client over NIO: daemon addresses, connect and negotiate, commands and their
        // replies, events as an async stream.
        .target(name: "QMPClient", dependencies: [
            "JSON",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // `highwater autoextend`: grows thin volumes when the daemon's write threshold fires.
        // A pure policy and per-volume state machine, extend backends, metrics.
        .target(name: "AutoExtend", dependencies: [
            "JSON", "QAPI", "QMPClient",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // `highwater watch`: a QMP client that follows daemons' events and node use.
        .target(name: "HighWaterWatch", dependencies: [
            "JSON", "QMPClient",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // `highwater serve`: the whole thin-provisioning loop in one process — a thin qcow2
        // on a small file volume, exported with writes held on ENOSPC, and the AutoExtend
        // controller growing the volume over a private monitor — for a first look.
        .target(name: "HighWaterServe", dependencies: [
            "HighWaterDaemon", "AutoExtend", "ImageTools", "QMPClient",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "highwater", dependencies: [
            "HighWaterDaemon", "HighWaterServe", "ImageTools", "AutoExtend", "HighWaterWatch", "QMPClient",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "QAPITests", dependencies: ["QAPI", "JSON"]),
        .testTarget(name: "QMPTests", dependencies: ["QMP", "JSON"]),
        .testTarget(name: "BlockCoreTests", dependencies: ["BlockCore"]),
        .testTarget(name: "BlockDriversTests", dependencies: ["BlockDrivers", "BlockCore"]),
        .testTarget(name: "NBDWireTests", dependencies: ["NBDWire", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "NBDServerTests", dependencies: [
            "NBDServer", "NBDWire", "BlockCore", "BlockDrivers",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "QMPCommandsTests", dependencies: ["QMPCommands", "JSON", "QMP", "BlockCore"]),
        .testTarget(name: "ImageToolsTests", dependencies: ["ImageTools", "BlockDrivers", "JSON"]),
        .testTarget(name: "HighWaterDaemonTests", dependencies: [
            "HighWaterDaemon", "JSON", "QMP", "QMPCommands",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "QMPClientTests", dependencies: [
            "QMPClient", "JSON",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "AutoExtendTests", dependencies: [
            "AutoExtend", "QMPClient", "JSON",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "HighWaterServeTests", dependencies: ["HighWaterServe", "AutoExtend", "QMPClient"]),
        .testTarget(name: "HighWaterWatchTests", dependencies: ["HighWaterWatch", "QMPClient", "JSON"]),
    ]
)
