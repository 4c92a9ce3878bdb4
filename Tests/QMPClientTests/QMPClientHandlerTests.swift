import JSON
import NIOCore
import NIOEmbedded
import Testing
@testable import QMPClient

/// The client handler on an embedded channel, fed the daemon's bytes by hand.
@Suite struct QMPClientHandlerTests {
    struct Fixture {
        let channel = EmbeddedChannel()
        let greeting: EventLoopPromise<QMPGreeting>
        let events: AsyncStream<QMPEvent>
        let ended: EventLoopPromise<QMPClientError>

        init() throws {
            greeting = channel.eventLoop.makePromise()
            ended = channel.eventLoop.makePromise()
            let (events, continuation) = AsyncStream.makeStream(of: QMPEvent.self)
            self.events = events
            try channel.pipeline.syncOperations.addHandler(QMPClientHandler(greeting: greeting, events: continuation, ended: ended))
        }

        func receive(_ text: String) throws {
            try channel.writeInbound(channel.allocator.buffer(string: text))
        }

        func send(_ command: String, _ arguments: JSONObject? = nil) -> EventLoopFuture<JSONValue> {
            let reply = channel.eventLoop.makePromise(of: JSONValue.self)
            channel.writeAndFlush(QMPClientHandler.Request(command: command, arguments: arguments, reply: reply), promise: nil)
            return reply.futureResult
        }

        func sent() throws -> String? {
            try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }
        }
    }

    @Test func numbersCommandsAndMatchesRepliesByID() throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "v7.2.0"}, "capabilities": ["oob"]}}"# + "\r\n")
        #expect(try fixture.greeting.futureResult.wait() == QMPGreeting(version: "7.2.0", package: "v7.2.0", capabilities: ["oob"]))

        let first = fixture.send("qmp_capabilities")
        let second = fixture.send("block-set-write-threshold", ["node-name": "vol0", "write-threshold": .unsigned(1 << 40)])
        #expect(try fixture.sent() == #"{"execute": "qmp_capabilities", "id": 1}"# + "\n")
        #expect(try fixture.sent() == #"{"execute": "block-set-write-threshold", "arguments": {"node-name": "vol0", "write-threshold": 1099511627776}, "id": 2}"# + "\n")

        // Replies in any order, split anywhere, an event in between.
        try fixture.receive(#"{"return": {}, "id"#)
        try fixture.receive(#"": 2}{"event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "vol0"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#)
        #expect(try second.wait() == .object([:]))
        try fixture.receive(#"{"error": {"class": "GenericError", "desc": "nope"}, "id": 1}"#)
        #expect(throws: QMPClientError.commandFailed(command: "qmp_capabilities", errorClass: "GenericError", description: "nope")) {
            try first.wait()
        }
    }

    @Test func eventsArriveInOrderAndEndWithTheConnection() async throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"QMP": {}}"#)
        try fixture.receive(#"{"event": "A", "data": {"n": 1}, "timestamp": {"seconds": 1700000000, "microseconds": 42}}{"event": "B"}"#)
        fixture.channel.pipeline.fireChannelInactive()
        var events: [QMPEvent] = []
        for await event in fixture.events { events.append(event) }
        #expect(events == [
            QMPEvent(name: "A", data: ["n": 1], timestamp: QMPTimestamp(seconds: 1_700_000_000, microseconds: 42)),
            QMPEvent(name: "B", data: [:]),
        ])
        #expect(try await fixture.ended.futureResult.get() == .connectionClosed)
    }

    @Test func aGreetingWithoutVersionSaysSo() {
        #expect(QMPGreeting(["capabilities": []]) == QMPGreeting(version: "?.?.?", package: "", capabilities: []))
    }

    @Test func aClosedConnectionFailsWhatIsPending() throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"QMP": {}}"#)
        let pending = fixture.send("query-blockstats")
        fixture.channel.pipeline.fireChannelInactive()
        #expect(throws: QMPClientError.connectionClosed) { try pending.wait() }
    }

    @Test func somethingThatIsNotQMPClosesTheConnection() throws {
        let fixture = try Fixture()
        try fixture.receive(#"{"hello": 1}"#)
        #expect(!fixture.channel.isActive)
        #expect(throws: QMPClientError.protocolViolation("no greeting")) { try fixture.greeting.futureResult.wait() }
        #expect(try fixture.ended.futureResult.wait() == .protocolViolation("no greeting"))
    }
}
