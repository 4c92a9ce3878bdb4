import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

/// Images made and checked with qemu-img/qemu-io, opened through `FileDriver` + `Qcow2Driver`.
struct Qcow2Fixture {
    let directory = TemporaryDirectory()

    func path(_ name: String) -> String { directory.path + "/" + name }

    /// Runs a QEMU tool and requires success; returns its output.
    @discardableResult
    func tool(_ arguments: String...) throws -> String {
        let result = try run(arguments)
        try #require(result.status == 0, "\(arguments.joined(separator: " ")): \(result.output)")
        return result.output
    }

    func create(_ name: String, size: String = "4M", options: String = "", backing: String? = nil, backingFormat: String = "qcow2") throws -> String {
        var arguments = ["qemu-img", "create", "-q", "-f", "qcow2"]
        if !options.isEmpty { arguments += ["-o", options] }
        if let backing { arguments += ["-b", backing, "-F", backingFormat] }
        arguments += [path(name), size]
        let result = try run(arguments)
        try #require(result.status == 0, "\(result.output)")
        return path(name)
    }

    /// Runs qemu-io commands on an image.
    func qemuIO(_ image: String, _ commands: String...) throws {
        var arguments = ["qemu-io", "-f", "qcow2"]
        for command in commands { arguments += ["-c", command] }
        arguments.append(image)
        let result = try run(arguments)
        try #require(result.status == 0 && !result.output.contains("error") && !result.output.contains("failed"), "\(result.output)")
    }

    func fileNode(_ path: String, readOnly: Bool = false, discard: BlockNodeOptions.DiscardMode = .ignore, sink: EventRecorder = EventRecorder(),
                  volume: Bool = false) throws -> BlockNode {
        try Self.fileNode(path, readOnly: readOnly, discard: discard, sink: sink, volume: volume)
    }

    static func fileNode(_ path: String, readOnly: Bool = false, discard: BlockNodeOptions.DiscardMode = .ignore, sink: EventRecorder = EventRecorder(),
                         volume: Bool = false) throws -> BlockNode {
        let options = BlockNodeOptions(nodeName: "file-\(UUID().uuidString.prefix(8))", readOnly: readOnly, discard: discard)
        return try makeNode(FileDriver(options: FileOptions(filename: path, volume: volume), node: options), options, sink: sink)
    }

    /// Opens a qcow2 image, with its backing chain from the header unless told otherwise;
    /// `volume`: its file is a fixed-size volume.
    func open(
        _ path: String, readOnly: Bool = false, options: Qcow2Options = Qcow2Options(), backing: Qcow2Backing? = nil,
        discard: BlockNodeOptions.DiscardMode = .ignore, fileSink: EventRecorder = EventRecorder(), volume: Bool = false
    ) throws -> BlockNode {
        let file = try fileNode(path, readOnly: readOnly, discard: discard, sink: fileSink, volume: volume)
        let node = BlockNodeOptions(nodeName: "q-\(UUID().uuidString.prefix(8))", readOnly: readOnly, discard: discard)
        let driver = try Qcow2Driver(options: options, file: file, node: node, backing: backing ?? Self.headerBacking())
        return try makeNode(driver, node)
    }

    /// Opens backing files as QEMU would: read-only, qcow2 or raw.
    static func headerBacking() -> Qcow2Backing {
        .fromHeader { (filename: String, format: String?) throws(BlockError) -> BlockNode in
            do {
                let file = try fileNode(filename, readOnly: true)
                let node = BlockNodeOptions(nodeName: "b-\(UUID().uuidString.prefix(8))", readOnly: true)
                if format == "raw" {
                    return try makeNode(RawDriver(options: RawOptions(), file: file, node: node), node)
                }
                return try makeNode(Qcow2Driver(options: Qcow2Options(), file: file, node: node, backing: headerBacking()), node)
            } catch let error as BlockError {
                throw error
            } catch {
                throw .invalidArgument("\(error)")
            }
        }
    }

    /// The guest view of an image according to qemu-img.
    func qemuContents(_ image: String) throws -> [UInt8] {
        let raw = path("expected-\(UUID().uuidString).raw")
        try tool("qemu-img", "convert", "-O", "raw", image, raw)
        defer { try? FileManager.default.removeItem(atPath: raw) }
        return Array(FileManager.default.contents(atPath: raw)!)
    }

    /// `qemu-img check` must find nothing (no corruption, no leak).
    func expectClean(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try run(["qemu-img", "check", image])
        #expect(result.status == 0, "\(result.output)", sourceLocation: sourceLocation)
        #expect(result.output.contains("No errors were found on the image."), "\(result.output)", sourceLocation: sourceLocation)
    }
}

extension BlockNode {
    func readAll() throws -> [UInt8] {
        try read(at: 0, count: Int(size))
    }

    /// Closes the node's driver and its children's, as the graph does on removal.
    func closeChain() {
        let children = driver.children
        driver.close()
        for child in children { child.node.closeChain() }
    }
}

/// A deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
