import BlockCore
import BlockDrivers
import JSON
import QAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Opens the nodes a `BlockdevOptions` tree describes — children first, inline ones under
/// generated `#block` names, backing files named by qcow2 headers too — and inserts them into
/// the graph. On failure nothing it opened stays in the graph.
final class BlockNodeOpener: Sendable {
    private let graph: BlockGraph
    private let eventSink: any BlockEventSink
    /// What this opener has inserted so far, oldest first.
    private let opened = Mutex<[BlockNode]>([])

    init(graph: BlockGraph, eventSink: any BlockEventSink) {
        self.graph = graph
        self.eventSink = eventSink
    }

    /// `blockdev-add` / `--blockdev`: the root node must be named.
    func add(_ options: BlockdevOptions) throws -> BlockNode {
        let name = try BlockGraph.requireRootNodeName(options.nodeName)
        do {
            return try open(options, name: name, isExplicit: true, parent: nil)
        } catch {
            for node in opened.withLock({ $0 }).reversed() { graph.removeUnused(node) }
            throw error
        }
    }

    private func open(_ options: BlockdevOptions, name: String, isExplicit: Bool, parent: BlockNodeOptions?) throws -> BlockNode {
        if isExplicit || options.nodeName != nil { try graph.checkNewNodeName(name) }
        let nodeOptions = options.nodeOptions(name: name, isExplicit: isExplicit, parent: parent)
        // Nodes opened from here on that are not file children belong to the backing chain.
        var backingMark: Int?
        let driver: any BlockDriver
        switch options.specific {
        case .file(let file):
            driver = try FileDriver(options: file, node: nodeOptions)
        case .hostDevice(let file):
            driver = try HostDeviceDriver(options: file, node: nodeOptions)
        case .raw(let raw, let fileReference):
            let child = try resolve(fileReference, parent: nodeOptions)
            driver = try RawDriver(options: raw, file: child, node: nodeOptions)
        case .qcow2(let qcow2, let fileReference, let backingReference):
            let child = try resolve(fileReference, parent: nodeOptions)
            backingMark = opened.withLock { $0.count }
            let backing: Qcow2Backing = switch backingReference {
            case .none: .none
            case .reference(let reference): .node(try resolve(reference, parent: Self.backingOptions(of: nodeOptions)))
            case .fromHeader: .fromHeader(open: { filename, format throws(BlockError) in
                try self.openBackingFile(filename, format: format, parent: nodeOptions)
            })
            }
            driver = try Qcow2Driver(options: qcow2, file: child, node: nodeOptions, backing: backing)
        case .null(let null, let variant):
            driver = try NullDriver(options: null, variant: variant)
        }
        let node: BlockNode
        do {
            node = try BlockNode(options: nodeOptions, driver: driver, eventSink: eventSink)
            let firstBackingNode = backingMark.flatMap { mark in opened.withLock { $0.count > mark ? $0[mark] : nil } }
            try graph.insert(node, before: firstBackingNode)
        } catch {
            driver.close()
            throw error
        }
        opened.withLock { $0.append(node) }
        return node
    }

    /// A child reference: an existing node, or a new implicit one (named as QEMU names them
    /// unless the inline definition names it).
    private func resolve(_ reference: BlockdevRef, parent: BlockNodeOptions) throws -> BlockNode {
        switch reference {
        case .reference(let name):
            return try graph.lookup(device: name, nodeName: name)
        case .inline(let options):
            let name = options.nodeName ?? graph.makeImplicitNodeName()
            return try open(options, name: name, isExplicit: false, parent: parent)
        }
    }

    /// Opens the backing file an image header names, as QEMU does: read-only, its format from
    /// the header or probed, on an implicit `file` node.
    private func openBackingFile(_ filename: String, format: String?, parent: BlockNodeOptions) throws(BlockError) -> BlockNode {
        do {
            let driver = try format ?? Self.probeFormat(filename)
            var members: [(key: String, value: JSONValue)] = [
                (key: "driver", value: .string(driver)),
                (key: "file", value: ["driver": "file", "filename": .string(filename)]),
            ]
            if driver != "qcow2" && driver != "raw" { members.removeAll() }
            guard !members.isEmpty else { throw BlockError.notSupported("Unknown driver '\(driver)'") }
            let options = try BlockdevOptions.decode(JSONObject(members), mode: .json)
            return try open(options, name: graph.makeImplicitNodeName(), isExplicit: false,
                            parent: Self.backingOptions(of: parent))
        } catch let error as BlockError {
            throw error
        } catch {
            throw .invalidArgument(String(describing: error))
        }
    }

    /// What a backing child inherits: read-only always, the cache mode.
    private static func backingOptions(of parent: BlockNodeOptions) -> BlockNodeOptions {
        var options = parent
        options.readOnly = true
        options.discard = .ignore
        return options
    }

    /// QEMU's format probe, for the formats HighWater opens: qcow2 by its magic, else raw.
    private static func probeFormat(_ filename: String) throws(BlockError) -> String {
        let fd = Glibc.open(filename, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(errno: errno, operation: "Could not open '\(filename)'") }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        let count = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) }
        return count == 4 && magic == [0x51, 0x46, 0x49, 0xFB] ? "qcow2" : "raw"
    }
}
