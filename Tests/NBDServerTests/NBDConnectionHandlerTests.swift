import BlockCore
import Logging
import NBDWire
import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import NBDServer

@Suite struct NBDConnectionHandlerTests {
    let registry = NBDExportRegistry()
    let export: NBDExport
    let driver: MemoryBlockDriver

    init() throws {
        (export, driver) = try makeExport(size: 1 << 20)
        try registry.add(export)
    }

    private func makeServer(executor: any BlockIOExecutor = InlineBlockIOExecutor(), maximumConnections: Int = 0,
                            maximumRequestsInFlight: Int = 64, inlineIO: NBDInlineIOPolicy = .never) -> NBDServer {
        NBDServer(registry: registry, executor: executor, maximumConnections: maximumConnections,
                  maximumRequestsInFlight: maximumRequestsInFlight, inlineIO: inlineIO, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    @Test func fullSessionLikeQemuImg() throws {
        let server = makeServer()
        let client = try EmbeddedNBDClient(server: server)
        try client.handshake()
        #expect(registry.exports.first?.connectionCount == 1)

        let data = (0..<65536).map { UInt8(truncatingIfNeeded: $0 * 31) }
        try client.send(NBDRequest(flags: .fua, command: .write, cookie: 1, offset: 65536, length: 65536), payload: data)
        try client.send(NBDRequest(command: .read, cookie: 2, offset: 65536, length: 65536))
        try client.send(NBDRequest(command: .blockStatus, cookie: 3, offset: 0, length: 1 << 20))
        try client.send(NBDRequest(flags: .noHole, command: .writeZeroes, cookie: 4, offset: 65536, length: 4096))
        try client.send(NBDRequest(command: .trim, cookie: 5, offset: 0, length: 65536))
        try client.send(NBDRequest(command: .flush, cookie: 6))
        try client.send(NBDRequest(command: .cache, cookie: 7, offset: 0, length: 4096))
        #expect(try client.receive() == [
            .simpleReply(error: nil, cookie: 1, data: nil),
            .chunk(NBDReplyChunk(cookie: 2, content: .offsetData(offset: 65536, data: ByteBuffer(bytes: data)))),
            .chunk(NBDReplyChunk(cookie: 3, content: .blockStatus(contextID: 0, extents: [
                NBDBlockStatusDescriptor(length: 65536, flags: 3),
                NBDBlockStatusDescriptor(length: 65536, flags: 0),
                NBDBlockStatusDescriptor(length: 14 * 65536, flags: 3),
            ]))),
            .simpleReply(error: nil, cookie: 4, data: nil),
            .simpleReply(error: nil, cookie: 5, data: nil),
            .simpleReply(error: nil, cookie: 6, data: nil),
            .simpleReply(error: nil, cookie: 7, data: nil),
        ])
        #expect(driver.contents(65536..<65536 + 4096) == [UInt8](repeating: 0, count: 4096))
        #expect(driver.calls.last == .flush)

        try client.send(NBDRequest(command: .disconnect, cookie: 8))
        #expect(try client.receive().isEmpty)
        #expect(!client.channel.isActive)
        #expect(registry.exports.first?.connectionCount == 0)
        #expect(server.connectionCount == 0)
    }

    @Test func wholeSessionPipelinedAndFedByteByByte() throws {
        var wire = ByteBuffer()
        wire.writeNBDClientFlags([.fixedNewstyle, .noZeroes])
        wire.writeNBDOption(.structuredReply)
        var go = ByteBuffer()
        NBDExportInfoRequest(exportName: "disk").encode(into: &go)
        wire.writeNBDOption(.go, data: go)
        NBDRequest(command: .write, cookie: 1, offset: 10, length: 3).encode(into: &wire)
        wire.writeBytes([4, 5, 6])
        NBDRequest(command: .read, cookie: 2, offset: 9, length: 5).encode(into: &wire)
        NBDRequest(command: .disconnect, cookie: 3).encode(into: &wire)

        let client = try EmbeddedNBDClient(server: makeServer())
        for byte in wire.readableBytesView {
            try client.channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        var replies = try client.receive()
        #expect(replies.removeFirst() == .greeting([.fixedNewstyle, .noZeroes]))
        #expect(replies.removeFirst() == .optionReply(.structuredReply, .ack))
        while case .optionReply(.go, let reply) = replies.first {
            replies.removeFirst()
            if reply == .ack { client.decoder.phase = .transmission }
        }
        replies += try client.receive()
        #expect(replies == [
            .simpleReply(error: nil, cookie: 1, data: nil),
            .chunk(NBDReplyChunk(cookie: 2, content: .offsetData(offset: 9, data: ByteBuffer(bytes: [0, 4, 5, 6, 0])))),
        ])
        #expect(!client.channel.isActive)
    }

    @Test func everyPipelinedRequestIsAnsweredOnceWhateverTheCompletionOrder() throws {
        let executor = DeferredBlockIOExecutor()
        let client = try EmbeddedNBDClient(server: makeServer(executor: executor, maximumRequestsInFlight: 8))
        try client.handshake()
        var generator = SystemRandomNumberGenerator()
        var expected: [UInt64: [UInt8]] = [:]
        var answered: [UInt64] = []
        for round in 0..<20 {
            try client.send { buffer in
                for index in 0..<10 {
                    let cookie = UInt64(round * 10 + index)
                    // Each request owns its 16-byte slot: writes and reads never overlap.
                    let offset = cookie * 16
                    if cookie % 2 == 0 {
                        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
                        expected[cookie + 1] = bytes
                        NBDRequest(command: .write, cookie: cookie, offset: offset, length: 16).encode(into: &buffer)
                        buffer.writeBytes(bytes)
                    } else {
                        NBDRequest(command: .flush, cookie: cookie).encode(into: &buffer)
                    }
                }
            }
            while executor.pendingCount > 0 {
                executor.run(at: Int.random(in: 0..<executor.pendingCount, using: &generator))
            }
            answered += try client.receive().compactMap(\.cookie)
        }
        #expect(answered.sorted() == Array(0..<200))
        for (cookie, bytes) in expected {
            let offset = Int(cookie - 1) * 16
            #expect(driver.contents(offset..<offset + 16) == bytes)
        }
    }

    @Test func invalidRequestsKeepTheConnectionWorking() throws {
        let client = try EmbeddedNBDClient(server: makeServer())
        try client.handshake()
        try client.send(NBDRequest(command: .read, cookie: 1, offset: (1 << 20) - 512, length: 1024))
        try client.send(NBDRequest(command: .read, cookie: 2, offset: 0, length: 33_554_433))
        try client.send(NBDRequest(command: NBDCommand(rawValue: 99), cookie: 3))
        try client.send(NBDRequest(command: .read, cookie: 4, offset: 0, length: 4))
        #expect(try client.receive() == [
            .chunk(NBDReplyChunk(cookie: 1, content: .error(.invalid, message: "operation past EOF; From: 1048064, Len: 1024, Size: 1048576"))),
            .chunk(NBDReplyChunk(cookie: 2, content: .error(.invalid, message: "len (33554433) is larger than max len (33554432)"))),
            .chunk(NBDReplyChunk(cookie: 3, content: .error(.invalid, message: "invalid request type (99) received"))),
            .chunk(NBDReplyChunk(cookie: 4, content: .offsetData(offset: 0, data: ByteBuffer(bytes: [0, 0, 0, 0])))),
        ])
        #expect(client.channel.isActive)
    }

    @Test func simpleRepliesWithoutStructuredNegotiation() throws {
        let client = try EmbeddedNBDClient(server: makeServer())
        try client.handshake(structured: false)
        try client.send(NBDRequest(command: .write, cookie: 1, offset: 0, length: 3), payload: [7, 8, 9])
        try client.send(NBDRequest(command: .read, cookie: 2, offset: 0, length: 3))
        try client.send(NBDRequest(command: .blockStatus, cookie: 3, offset: 0, length: 512))
        #expect(try client.receive() == [
            .simpleReply(error: nil, cookie: 1, data: nil),
            .simpleReply(error: nil, cookie: 2, data: ByteBuffer(bytes: [7, 8, 9])),
            .simpleReply(error: .invalid, cookie: 3, data: nil),
        ])
    }

    @Test func oversizedWriteDropsTheConnection() throws {
        let client = try EmbeddedNBDClient(server: makeServer())
        try client.handshake()
        try client.send(NBDRequest(command: .write, cookie: 1, offset: 0, length: 33 << 20))
        #expect(!client.channel.isActive)
    }

    @Test func unknownClientFlagsDropTheConnection() throws {
        let client = try EmbeddedNBDClient(server: makeServer())
        _ = try client.receive()
        try client.send { $0.writeNBDClientFlags(NBDClientFlags(rawValue: 0x10)) }
        #expect(!client.channel.isActive)
    }

    @Test func repliesGoOutInCompletionOrderAndDisconnectWaitsForThem() throws {
        let executor = DeferredBlockIOExecutor()
        let client = try EmbeddedNBDClient(server: makeServer(executor: executor))
        try client.handshake()
        try client.send { buffer in
            for cookie in UInt64(1)...3 {
                NBDRequest(command: .read, cookie: cookie, offset: cookie * 512, length: 1).encode(into: &buffer)
            }
            NBDRequest(command: .disconnect, cookie: 4).encode(into: &buffer)
        }
        #expect(executor.pendingCount == 3)
        #expect(try client.receive().isEmpty)

        executor.run(at: 2)
        executor.run(at: 0)
        #expect(try client.receive().map(\.cookie) == [3, 1])
        #expect(client.channel.isActive, "DISC waits for the request still running")
        executor.run(at: 0)
        #expect(try client.receive().map(\.cookie) == [2])
        #expect(!client.channel.isActive)
    }

    @Test func saturatedConnectionStopsTakingRequests() throws {
        let executor = DeferredBlockIOExecutor()
        let client = try EmbeddedNBDClient(server: makeServer(executor: executor, maximumRequestsInFlight: 2))
        try client.handshake()
        try client.send { buffer in
            for cookie in UInt64(1)...5 {
                NBDRequest(command: .flush, cookie: cookie).encode(into: &buffer)
            }
        }
        #expect(executor.pendingCount == 2)
        executor.run(at: 0)
        #expect(executor.pendingCount == 2, "one finished, the next one started")
        executor.run(at: 0)
        executor.run(at: 0)
        executor.run(at: 0)
        executor.run(at: 0)
        #expect(executor.pendingCount == 0)
        #expect(try client.receive().map(\.cookie) == [1, 2, 3, 4, 5])
    }

    @Test func fastSmallRequestsRunInlineUntilOneIsSlow() throws {
        let executor = DeferredBlockIOExecutor()
        // Limits far from the test's own timing noise: "fast" below 2 ms, a slow request 20 ms.
        let policy = NBDInlineIOPolicy(maximumLength: 65536, latencyLimitNanoseconds: 2_000_000)
        let client = try EmbeddedNBDClient(server: makeServer(executor: executor, inlineIO: policy))
        try client.handshake()
        try client.send(NBDRequest(command: .read, cookie: 1, offset: 0, length: 4096))
        try client.send(NBDRequest(command: .flush, cookie: 2))
        try client.send(NBDRequest(command: .read, cookie: 3, offset: 0, length: 128 * 1024))
        #expect(executor.pendingCount == 2, "FLUSH and the large read go to the executor")
        #expect(try client.receive().map(\.cookie) == [1])

        driver.delay(microseconds: 20_000)
        try client.send(NBDRequest(command: .read, cookie: 4, offset: 0, length: 4096))
        #expect(try client.receive().map(\.cookie) == [4], "still inline: nothing slow seen yet")
        try client.send(NBDRequest(command: .write, cookie: 5, offset: 0, length: 1), payload: [1])
        #expect(executor.pendingCount == 3, "after a slow request small ones go to the executor too")
        #expect(try client.receive().isEmpty)
    }

    @Test func aRequestThatFiredAnEventIsNoSampleOfSpeed() throws {
        // Delivering the event takes 20 ms (a manager running on our core), the I/O nothing.
        let events = BlockEventCounter(forwardingTo: SlowBlockEvents(microseconds: 20_000))
        let (export, _) = try makeExport(id: "e1", name: "thin", eventSink: events)
        try registry.add(export)
        let executor = DeferredBlockIOExecutor()
        let server = NBDServer(registry: registry, executor: executor, inlineIO: NBDInlineIOPolicy(maximumLength: 65536, latencyLimitNanoseconds: 2_000_000),
                               blockEvents: events, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let client = try EmbeddedNBDClient(server: server)
        try client.handshake(export: "thin")
        for cookie in UInt64(1)...3 {
            export.node.setWriteThreshold(cookie * 4096)
            try client.send(NBDRequest(command: .write, cookie: cookie, offset: cookie * 4096, length: 1), payload: [1])
            #expect(try client.receive().map(\.cookie) == [cookie], "inline: crossing the threshold is not slow I/O")
        }
        #expect(events.count == 3)
        #expect(executor.pendingCount == 0)
    }

    @Test func largeRequestsAreLimitedByBytesInFlight() throws {
        let executor = DeferredBlockIOExecutor()
        let server = NBDServer(registry: registry, executor: executor, maximumBytesInFlight: 300_000, inlineIO: .never,
                               logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let client = try EmbeddedNBDClient(server: server)
        try client.handshake()
        try client.send { buffer in
            for cookie in UInt64(1)...4 {
                NBDRequest(command: .read, cookie: cookie, offset: 0, length: 200_000).encode(into: &buffer)
            }
        }
        #expect(executor.pendingCount == 2, "the second one crosses the budget; no third")
        executor.run(at: 0)
        #expect(executor.pendingCount == 2)
        executor.run(at: 0)
        executor.run(at: 0)
        executor.run(at: 0)
        #expect(try client.receive().map(\.cookie) == [1, 2, 3, 4])
    }

    @Test func maximumConnectionsRefusesTheNextClient() throws {
        let counts = Mutex<[Int]>([])
        let server = NBDServer(registry: registry, executor: InlineBlockIOExecutor(), maximumConnections: 1,
                               logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                               connectionCountDidChange: { count in counts.withLock { $0.append(count) } })
        let first = try EmbeddedNBDClient(server: server)
        #expect(!server.canAcceptConnection)
        let second = try EmbeddedNBDClient(server: server)
        #expect(!second.channel.isActive)
        #expect(try second.receive().isEmpty)
        #expect(first.channel.isActive)
        #expect(server.connectionCount == 1)
        try first.channel.close().wait()
        #expect(server.canAcceptConnection)
        #expect(counts.withLock { $0 } == [1, 0])
    }

    @Test func hardRemovalDisconnectsClientsThenDeletes() throws {
        let deleted = DeletionLog()
        let registry = NBDExportRegistry(onExportDeleted: deleted.record)
        try registry.add(export)
        let server = NBDServer(registry: registry, executor: InlineBlockIOExecutor(), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let client = try EmbeddedNBDClient(server: server)
        try client.handshake()
        #expect(throws: NBDExportRegistryError.inUse(id: "e0")) { try registry.remove(id: "e0", mode: .safe) }
        try registry.remove(id: "e0", mode: .hard)
        client.channel.embeddedEventLoop.run()
        #expect(!client.channel.isActive)
        #expect(deleted.deleted == ["e0"])
    }

    @Test func exportRemovedDuringNegotiationRefusesGo() throws {
        let client = try EmbeddedNBDClient(server: makeServer())
        _ = try client.receive()
        try client.send { $0.writeNBDClientFlags([.fixedNewstyle, .noZeroes]) }
        try registry.remove(id: "e0")
        #expect(try client.option(.go) { NBDExportInfoRequest(exportName: "disk").encode(into: &$0) }
                == [.error(.errorUnknown, message: "export 'disk' not present")])
        #expect(client.channel.isActive)
    }
}

extension NBDServerMessage {
    var cookie: UInt64? {
        switch self {
        case .simpleReply(_, let cookie, _): cookie
        case .chunk(let chunk): chunk.cookie
        default: nil
        }
    }
}

@Suite struct NBDServerConfigureTests {
    @Test func configureAddsAGreetingHandler() throws {
        let server = NBDServer(registry: NBDExportRegistry(), executor: InlineBlockIOExecutor(),
                               logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let channel = EmbeddedChannel()
        try server.configure(channel: channel).wait()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 10809)).wait()
        var greeting = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(greeting.readInteger(as: UInt64.self) == NBDMagic.greeting)
        #expect(server.connectionCount == 1)
    }
}
