import Foundation
import BlockCore
import JSON
import NBDServer
import QAPI
import QMP
import Synchronization
import Testing

@testable import QMPCommands

/// Records emitted events.
final class RecordingEmitter: QMPEventEmitter {
    let events = Mutex<[(name: String, data: JSONObject?)]>([])
    func emit(_ name: String, data: JSONObject?) { events.withLock { $0.append((name, data)) } }
    var names: [String] { events.withLock { $0.map(\.name) } }
}

/// An NBD server "listener" without sockets.
final class FakeNBDControl: NBDServerControl {
    let running = Mutex<NBDServer?>(nil)
    let registry: NBDExportRegistry
    init(registry: NBDExportRegistry) { self.registry = registry }
    var server: NBDServer? { running.withLock { $0 } }
    func start(_ options: NBDServerOptions) throws {
        let server = NBDServer(registry: registry, executor: InlineBlockIOExecutor(), logger: .init(label: "test"))
        running.withLock { $0 = server }
    }
    func stop() { running.withLock { $0 = nil } }
}

final class QuitCounter: Sendable {
    let count = Atomic(0)
}

struct CommandFixture {
    let commands: HighWaterCommands
    let events = RecordingEmitter()
    let graph = BlockGraph()
    let quits = QuitCounter()

    init() {
        let events = self.events
        let box = Mutex<HighWaterCommands?>(nil)
        let registry = NBDExportRegistry(onExportDeleted: { export in box.withLock { $0 }?.exportDeleted(export) })
        let quits = self.quits
        commands = HighWaterCommands(context: .init(
            graph: graph, exports: registry, nbd: FakeNBDControl(registry: registry), events: events,
            requestShutdown: { quits.count.add(1, ordering: .relaxed) }))
        box.withLock { $0 = commands }
    }

    @discardableResult
    func run(_ command: String, _ arguments: JSONObject = [:]) -> Result<JSONValue, QMPError> {
        commands.execute(QMPRequest(command: command, arguments: arguments, id: nil))
    }

    func value(_ command: String, _ arguments: JSONObject = [:]) throws -> JSONValue {
        try run(command, arguments).get()
    }

    func errorText(_ command: String, _ arguments: JSONObject = [:]) -> String? {
        if case .failure(let error) = run(command, arguments) { error.description } else { nil }
    }
}

/// Writes `count` bytes of ones through the node's core.
func write(_ count: Int, at offset: UInt64, to node: BlockNode) throws {
    let data = [UInt8](repeating: 1, count: count)
    let result: Result<Void, any Error> = data.withUnsafeBytes { bytes in
        do {
            try node.write(at: offset, from: bytes)
            return .success(())
        } catch {
            return .failure(error)
        }
    }
    try result.get()
}

@Suite struct HighWaterCommandsTests {
    @Test func unknownCommandIsCommandNotFound() {
        let fixture = CommandFixture()
        guard case .failure(let error) = fixture.run("nonexistent-cmd") else { Issue.record("expected an error"); return }
        #expect(error.errorClass == .commandNotFound)
        #expect(error.description == "The command nonexistent-cmd has not been found")
    }

    @Test func queryCommandsListsEveryCommand() throws {
        let names = try CommandFixture().value("query-commands").arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        for name in ["qmp_capabilities", "query-version", "query-commands", "query-named-block-nodes", "query-blockstats",
                     "block-set-write-threshold", "blockdev-add", "blockdev-del", "block_resize", "nbd-server-start",
                     "nbd-server-stop", "block-export-add", "block-export-del", "query-block-exports", "quit"] {
            #expect(names.contains(name), "\(name)")
        }
    }

    @Test func blockdevAddThenQuery() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0", "size": 1048576])
        let nodes = try #require(fixture.value("query-named-block-nodes").arrayValue)
        #expect(nodes.count == 1)
        #expect(nodes[0]["node-name"] == "n0")
        #expect(nodes[0]["drv"] == "null-co")
        #expect(nodes[0]["write_threshold"] == 0)
        #expect(nodes[0]["image"]?["virtual-size"] == 1048576)
    }

    @Test func argumentErrorsHaveQEMUTexts() throws {
        let fixture = CommandFixture()
        #expect(fixture.errorText("blockdev-add", ["driver": "bogus", "node-name": "x"]) == "Parameter 'driver' does not accept value 'bogus'")
        #expect(fixture.errorText("blockdev-add", ["driver": "null-co"]) == "'node-name' must be specified for the root node")
        #expect(fixture.errorText("block-set-write-threshold", ["node-name": "nope", "write-threshold": 1]) == "Device 'nope' not found")
        #expect(fixture.errorText("block-set-write-threshold", ["node-name": "nope"]) == "Parameter 'write-threshold' is missing")
        #expect(fixture.errorText("query-version", ["foo": 1]) == "Parameter 'foo' is unexpected")
        #expect(fixture.errorText("blockdev-del", ["node-name": "nosuch"]) == "Failed to find node with node-name='nosuch'")
    }

    @Test func thresholdFiresOnceAsAnEventThenDisarms() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0", "size": 1048576])
        try fixture.value("block-set-write-threshold", ["node-name": "n0", "write-threshold": 4096])
        let node = try #require(fixture.graph.node(named: "n0"))
        for offset: UInt64 in [0, 2048, 8192] { try write(4096, at: offset, to: node) }
        let events = fixture.events.events.withLock { $0 }
        #expect(events.count == 1)
        #expect(events.first?.name == "BLOCK_WRITE_THRESHOLD")
        #expect(events.first?.data == ["node-name": "n0", "amount-exceeded": 2048, "write-threshold": 4096])
        #expect(try fixture.value("query-named-block-nodes").arrayValue?.first?["write_threshold"] == 0)
    }

    @Test func maximumThresholdReadsBackAsMinusOne() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0"])
        try fixture.value("block-set-write-threshold", ["node-name": "n0", "write-threshold": .uint(UInt64.max)])
        #expect(try fixture.value("query-named-block-nodes").arrayValue?.first?["write_threshold"] == -1)
    }

    @Test func inlineChildInheritsDiscard() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", [
            "driver": "raw", "node-name": "r0", "discard": "unmap",
            "file": ["driver": "null-co", "size": 1048576],
        ])
        let child = try #require(fixture.graph.nodes.first { $0.name.hasPrefix("#block") })
        #expect(child.options.discard == .unmap)
        #expect(fixture.errorText("blockdev-del", ["node-name": .string(child.name)]) == "Node \(child.name) is not owned by the monitor")
        try fixture.value("blockdev-del", ["node-name": "r0"])
        #expect(fixture.graph.nodes.isEmpty)
    }

    @Test func exportNeedsARunningServerAndHoldsItsNode() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0"])
        let export: JSONObject = ["type": "nbd", "id": "e0", "node-name": "n0", "writable": true]
        #expect(fixture.errorText("block-export-add", export) == "NBD server not running")
        try fixture.value("nbd-server-start", ["addr": ["type": "unix", "data": ["path": "/tmp/unused.sock"]]])
        try fixture.value("block-export-add", export)
        #expect(fixture.errorText("block-export-add", export) == "Block export id 'e0' is already in use")
        #expect(fixture.errorText("blockdev-del", ["node-name": "n0"]) == "Node n0 is in use")
        #expect(try fixture.value("query-block-exports") == [["node-name": "n0", "shutting-down": false, "type": "nbd", "id": "e0"]])
        try fixture.value("block-export-del", ["id": "e0"])
        #expect(fixture.events.names == ["BLOCK_EXPORT_DELETED"])
        try fixture.value("blockdev-del", ["node-name": "n0"])
    }

    @Test func exportsHoldingWritesReportTheirIOStatus() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0"])
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n1"])
        try fixture.value("nbd-server-start", ["addr": ["type": "unix", "data": ["path": "/tmp/unused.sock"]]])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e0", "node-name": "n0", "writable": true, "__io.highwater_on-enospc": "hold"])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e1", "node-name": "n1", "writable": true])
        // Only an export that holds writes has an I/O status; nothing is held yet.
        #expect(try fixture.value("query-block-exports") == [
            ["node-name": "n1", "shutting-down": false, "type": "nbd", "id": "e1"],
            ["node-name": "n0", "shutting-down": false, "type": "nbd", "id": "e0", "__io.highwater_io-status": "ok"],
        ])
        #expect(HighWaterCommands.exportInfo(id: "e0", nodeName: "n0", isShuttingDown: false, ioStatus: .noSpace)
            == ["node-name": "n0", "shutting-down": false, "type": "nbd", "id": "e0", "__io.highwater_io-status": "nospace"])
    }

    @Test func quitDeletesExportsBeforeAskingToShutDown() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0"])
        try fixture.value("nbd-server-start", ["addr": ["type": "unix", "data": ["path": "/tmp/unused.sock"]]])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e0", "node-name": "n0"])
        #expect(try fixture.value("quit") == [:])
        #expect(fixture.events.names == ["BLOCK_EXPORT_DELETED"])
        #expect(fixture.quits.count.load(ordering: .relaxed) == 1)
    }

    @Test func fileVolumeOption() throws {
        let fixture = CommandFixture()
        let path = "/tmp/highwater-volume-\(UInt64.random(in: 0...UInt64.max)).img"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: 4096)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try fixture.value("blockdev-add", ["driver": "file", "node-name": "v0", "filename": .string(path), "__io.highwater_volume": true])
        try fixture.value("blockdev-add", ["driver": "file", "node-name": "f0", "filename": .string(path), "locking": "off"])
        #expect(try !fixture.graph.lookup(device: nil, nodeName: "v0").driver.capabilities.growable)
        #expect(try fixture.graph.lookup(device: nil, nodeName: "f0").driver.capabilities.growable)
        #expect(fixture.errorText("blockdev-add", ["driver": "host_device", "node-name": "d0", "filename": "/dev/null",
                                                   "__io.highwater_volume": true])
                == "Parameter '__io.highwater_volume' is unexpected")
    }

    @Test func exportNoSpacePolicy() throws {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0"])
        try fixture.value("nbd-server-start", ["addr": ["type": "unix", "data": ["path": "/tmp/unused.sock"]]])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e0", "node-name": "n0", "writable": true,
                                               "__io.highwater_on-enospc": "hold", "__io.highwater_enospc-timeout": 5])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e1", "name": "x", "node-name": "n0",
                                               "__io.highwater_on-enospc": "hold", "__io.highwater_enospc-timeout": 0])
        try fixture.value("block-export-add", ["type": "nbd", "id": "e2", "name": "y", "node-name": "n0"])
        let exports = fixture.commands.context.exports
        #expect(exports.export(id: "e0")?.noSpacePolicy == .hold(timeout: .seconds(5)))
        #expect(exports.export(id: "e1")?.noSpacePolicy == .hold(timeout: nil))
        #expect(exports.export(id: "e2")?.noSpacePolicy == .report)
    }

    @Test func aWriteStallIsABlockIOErrorEvent() {
        let events = RecordingEmitter()
        QMPBlockEventSink(events: events).writeStalledOnNoSpace(nodeName: "disk0")
        let recorded = events.events.withLock { $0 }
        #expect(recorded.map(\.name) == ["BLOCK_IO_ERROR"])
        #expect(recorded.first?.data == [
            "device": "", "node-name": "disk0", "operation": "write", "action": "stop", "nospace": true,
            "reason": "No space left on device",
        ])
    }
}
