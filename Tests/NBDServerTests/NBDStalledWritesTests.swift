import BlockCore
import Logging
import NBDWire
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import NBDServer

/// `on-enospc=hold`: a 1 MiB thin disk on a 64 KiB volume that the tests grow, served to
/// embedded clients; time is the embedded event loop's.
@Suite struct NBDStalledWritesTests {
    final class StallRecorder: Sendable {
        private let exports = Mutex<[String]>([])
        var recorded: [String] { exports.withLock { $0 } }
        func record(_ export: NBDExport) { exports.withLock { $0.append(export.id) } }
    }

    let registry = NBDExportRegistry()
    let volume = MemoryBlockDriver(size: 65536)
    let stalls = StallRecorder()

    private func makeServer(policy: NBDNoSpacePolicy = .hold(timeout: .seconds(60)),
                            inlineIO: NBDInlineIOPolicy = .never) throws -> (NBDServer, NBDExport) {
        let volumeNode = try BlockNode(options: BlockNodeOptions(nodeName: "vol0"), driver: volume, eventSink: IgnoredBlockEvents())
        let thin = try BlockNode(options: BlockNodeOptions(nodeName: "thin0"),
                                 driver: ThinTestDriver(volume: volumeNode, virtualSize: 1 << 20), eventSink: IgnoredBlockEvents())
        let export = NBDExport(id: "e0", name: "disk", node: thin, writable: true, noSpacePolicy: policy)
        try registry.add(export)
        let stalls = self.stalls
        let server = NBDServer(registry: registry, executor: InlineBlockIOExecutor(), inlineIO: inlineIO,
                               logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                               onWriteStall: { stalls.record($0) })
        return (server, export)
    }

    private func connect(_ server: NBDServer) throws -> EmbeddedNBDClient {
        let client = try EmbeddedNBDClient(server: server)
        try client.handshake()
        return client
    }

    private func write(_ client: EmbeddedNBDClient, cookie: UInt64, at offset: UInt64, _ byte: UInt8, count: Int = 4096) throws {
        try client.send(NBDRequest(command: .write, cookie: cookie, offset: offset, length: UInt32(count)),
                        payload: [UInt8](repeating: byte, count: count))
    }

    private func success(_ cookie: UInt64) -> NBDServerMessage { .simpleReply(error: nil, cookie: cookie, data: nil) }

    private func noSpace(_ cookie: UInt64) -> NBDServerMessage {
        .chunk(NBDReplyChunk(cookie: cookie, content: .error(.noSpace, message: "writing to file failed: No space left on device")))
    }

    @Test func heldWritesRunInOrderOnceTheVolumeGrowsAndTheStallIsReportedOnce() throws {
        let (server, export) = try makeServer()
        let client = try connect(server)
        let loop = client.channel.embeddedEventLoop
        try write(client, cookie: 1, at: 65536, 0xA)
        try write(client, cookie: 2, at: 100_000, 0xB)
        try client.send(NBDRequest(command: .writeZeroes, cookie: 3, offset: 300_000, length: 4096))
        try write(client, cookie: 4, at: 0, 0xC)
        #expect(try client.receive() == [success(4)])
        #expect(export.heldWriteCount == 3)
        #expect(export.ioStatus == .noSpace)
        #expect(stalls.recorded == ["e0"])

        loop.advanceTime(by: .milliseconds(50))
        #expect(try client.receive().isEmpty)
        volume.grow(to: 1 << 20)
        // Grown: the held writes are about to run again, no longer stalled.
        #expect(export.heldWriteCount == 3)
        #expect(export.ioStatus == .ok)
        loop.advanceTime(by: NBDStalledWrites.checkInterval)
        #expect(try client.receive() == [success(1), success(2), success(3)])
        #expect(volume.contents(65536..<65536 + 4096) == [UInt8](repeating: 0xA, count: 4096))
        #expect(volume.calls.suffix(3) == [
            .write(offset: 65536, length: 4096, flags: []),
            .write(offset: 100_000, length: 4096, flags: []),
            .writeZeroes(offset: 300_000, length: 4096, flags: []),
        ])
        #expect(stalls.recorded == ["e0"])
        #expect(export.heldWriteCount == 0)
        #expect(export.ioStatus == .ok)

        // Nothing held: nothing polls.
        let queries = volume.sizeQueries
        loop.advanceTime(by: .seconds(1))
        #expect(volume.sizeQueries == queries)
    }

    @Test func aHeldWriteFailsWithNoSpaceAfterTheTimeout() throws {
        let (server, export) = try makeServer(policy: .hold(timeout: .seconds(2)))
        let client = try connect(server)
        let loop = client.channel.embeddedEventLoop
        try write(client, cookie: 1, at: 65536, 1)
        loop.advanceTime(by: .milliseconds(1990))
        #expect(try client.receive().isEmpty)
        loop.advanceTime(by: .milliseconds(20))
        #expect(try client.receive() == [noSpace(1)])
        #expect(export.heldWriteCount == 0)
        #expect(stalls.recorded == ["e0"])
        // The next write that finds no space is a new stall.
        try write(client, cookie: 2, at: 65536, 1)
        #expect(stalls.recorded == ["e0", "e0"])
    }

    @Test func reportAnswersNoSpaceAtOnce() throws {
        let (server, export) = try makeServer(policy: .report)
        let client = try connect(server)
        try write(client, cookie: 1, at: 65536, 1)
        #expect(try client.receive() == [noSpace(1)])
        #expect(export.heldWriteCount == 0 && stalls.recorded.isEmpty)
    }

    @Test func growthThatIsNotEnoughStartsANewStall() throws {
        let (server, _) = try makeServer()
        let client = try connect(server)
        let loop = client.channel.embeddedEventLoop
        try write(client, cookie: 1, at: 65536, 1)
        try write(client, cookie: 2, at: 200_000, 2)
        #expect(stalls.recorded.count == 1)
        volume.grow(to: 131072)
        loop.advanceTime(by: NBDStalledWrites.checkInterval)
        #expect(try client.receive() == [success(1)])
        #expect(stalls.recorded.count == 2)
        volume.grow(to: 262144)
        loop.advanceTime(by: NBDStalledWrites.checkInterval)
        #expect(try client.receive() == [success(2)])
        #expect(stalls.recorded.count == 2)
    }

    @Test func aCommandThatGrewTheVolumeRetriesAtOnce() throws {
        let (server, _) = try makeServer()
        let client = try connect(server)
        try write(client, cookie: 1, at: 65536, 1)
        registry.volumesMayHaveGrown()
        #expect(try client.receive().isEmpty)
        volume.grow(to: 131072)
        registry.volumesMayHaveGrown()
        #expect(try client.receive() == [success(1)])
    }

    @Test func readsAndOtherClientsGoOnWhileAWriteIsHeld() throws {
        let (server, export) = try makeServer()
        let first = try connect(server)
        try write(first, cookie: 1, at: 65536, 1)
        try first.send(NBDRequest(command: .read, cookie: 2, offset: 0, length: 16))
        #expect(try first.receive() == [
            .chunk(NBDReplyChunk(cookie: 2, content: .offsetData(offset: 0, data: ByteBuffer(bytes: [UInt8](repeating: 0, count: 16))))),
        ])
        let second = try connect(server)
        try write(second, cookie: 1, at: 0, 7)
        try second.send(NBDRequest(command: .read, cookie: 2, offset: 0, length: 1))
        #expect(try second.receive() == [
            success(1), .chunk(NBDReplyChunk(cookie: 2, content: .offsetData(offset: 0, data: ByteBuffer(bytes: [7])))),
        ])
        #expect(export.heldWriteCount == 1)
    }

    @Test func theWritesOfAClosedConnectionAreDropped() throws {
        let (server, export) = try makeServer()
        let client = try connect(server)
        let loop = client.channel.embeddedEventLoop
        try write(client, cookie: 1, at: 65536, 1)
        #expect(export.heldWriteCount == 1)
        try client.channel.close().wait()
        #expect(export.heldWriteCount == 0)
        let queries = volume.sizeQueries
        volume.grow(to: 131072)
        loop.advanceTime(by: .seconds(1))
        #expect(volume.sizeQueries == queries)
        #expect(volume.calls.isEmpty)
    }

    @Test func aWriteRunOnTheEventLoopIsHeldToo() throws {
        let (server, _) = try makeServer(inlineIO: .adaptive)
        let client = try connect(server)
        try write(client, cookie: 1, at: 65536, 1)
        try write(client, cookie: 2, at: 0, 2)
        #expect(try client.receive() == [success(2)])
        volume.grow(to: 131072)
        client.channel.embeddedEventLoop.advanceTime(by: NBDStalledWrites.checkInterval)
        #expect(try client.receive() == [success(1)])
        try client.send(NBDRequest(command: .disconnect, cookie: 3))
        #expect(!client.channel.isActive)
    }
}
