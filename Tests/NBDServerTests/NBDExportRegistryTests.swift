import Synchronization
import Testing
@testable import NBDServer

final class FakeConnection: NBDExportConnection {
    let closed = Atomic<Int>(0)
    func close() { closed.add(1, ordering: .relaxed) }
}

final class DeletionLog: Sendable {
    let names = Mutex<[String]>([])
    func record(_ export: NBDExport) { names.withLock { $0.append(export.id) } }
    var deleted: [String] { names.withLock { $0 } }
}

@Suite struct NBDExportRegistryTests {
    @Test func duplicateNamesAndIDsAreRejected() throws {
        let registry = NBDExportRegistry()
        try registry.add(makeExport(id: "e0", name: "disk").0)
        #expect(throws: NBDExportRegistryError.duplicateName("disk")) { try registry.add(makeExport(id: "e1", name: "disk").0) }
        #expect(throws: NBDExportRegistryError.duplicateID("e0")) { try registry.add(makeExport(id: "e0", name: "other").0) }
        #expect(NBDExportRegistryError.duplicateName("disk").description == "NBD server already has export named 'disk'")
        #expect(registry.activeExports.map(\.id) == ["e0"])
    }

    @Test func removalWithoutClientsDeletesAtOnce() throws {
        let log = DeletionLog()
        let registry = NBDExportRegistry(onExportDeleted: log.record)
        try registry.add(makeExport(id: "e0").0)
        try registry.remove(id: "e0")
        #expect(log.deleted == ["e0"])
        #expect(registry.lookup(name: "disk") == nil)
        #expect(throws: NBDExportRegistryError.notFound(id: "e0")) { try registry.remove(id: "e0") }
        #expect(NBDExportRegistryError.notFound(id: "e0").description == "Export 'e0' is not found")
    }

    @Test func safeRemovalFailsWhileInUse() throws {
        let registry = NBDExportRegistry()
        let export = try makeExport(id: "e0").0
        try registry.add(export)
        let connection = FakeConnection()
        #expect(registry.attach(connection, to: export))
        #expect(throws: NBDExportRegistryError.inUse(id: "e0")) { try registry.remove(id: "e0", mode: .safe) }
        #expect(NBDExportRegistryError.inUse(id: "e0").description == "export 'e0' still in use")
        #expect(registry.lookup(name: "disk") === export)
        #expect(connection.closed.load(ordering: .relaxed) == 0)
    }

    @Test func hardRemovalClosesClientsAndDeletesWhenTheLastLeaves() throws {
        let log = DeletionLog()
        let registry = NBDExportRegistry(onExportDeleted: log.record)
        let export = try makeExport(id: "e0").0
        try registry.add(export)
        let first = FakeConnection(), second = FakeConnection()
        #expect(registry.attach(first, to: export))
        #expect(registry.attach(second, to: export))

        try registry.remove(id: "e0", mode: .hard)
        #expect(first.closed.load(ordering: .relaxed) == 1)
        #expect(second.closed.load(ordering: .relaxed) == 1)
        #expect(registry.lookup(name: "disk") == nil, "hidden from new clients at once")
        #expect(registry.exports.map(\.isShuttingDown) == [true])
        #expect(throws: NBDExportRegistryError.alreadyShuttingDown(id: "e0")) { try registry.remove(id: "e0", mode: .hard) }
        #expect(!registry.attach(FakeConnection(), to: export))
        // The name is free again for a new export while the old one drains.
        try registry.add(makeExport(id: "e1", name: "disk").0)

        registry.detach(first, from: export)
        #expect(log.deleted.isEmpty)
        registry.detach(second, from: export)
        #expect(log.deleted == ["e0"])
        #expect(registry.exports.map(\.export.id) == ["e1"])
    }

    @Test func removeAllClosesEverything() throws {
        let log = DeletionLog()
        let registry = NBDExportRegistry(onExportDeleted: log.record)
        let busy = try makeExport(id: "busy", name: "a").0
        try registry.add(busy)
        try registry.add(makeExport(id: "idle", name: "b").0)
        let connection = FakeConnection()
        #expect(registry.attach(connection, to: busy))
        registry.removeAll()
        #expect(log.deleted == ["idle"])
        #expect(connection.closed.load(ordering: .relaxed) == 1)
        registry.detach(connection, from: busy)
        #expect(log.deleted == ["idle", "busy"])
        #expect(registry.exports.isEmpty)
    }
}
