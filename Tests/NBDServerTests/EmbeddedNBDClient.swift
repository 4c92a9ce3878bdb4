import NBDServer
import NBDWire
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

/// Holds the work submitted to it until the test runs it, in any order.
final class DeferredBlockIOExecutor: BlockIOExecutor {
    private let work = Mutex<[@Sendable () -> Void]>([])

    func execute(_ work: @escaping @Sendable () -> Void) {
        self.work.withLock { $0.append(work) }
    }

    var pendingCount: Int { work.withLock { $0.count } }

    /// Runs the pending item at `index` (in submission order).
    func run(at index: Int) {
        let item = work.withLock { $0.remove(at: index) }
        item()
    }
}

/// A client speaking NBD to a connection handler through an `EmbeddedChannel`.
final class EmbeddedNBDClient {
    let channel = EmbeddedChannel()
    var decoder = NBDClientDecoder()

    init(server: NBDServer) throws {
        try channel.pipeline.syncOperations.addHandler(server.makeConnectionHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 10809)).wait()
    }

    func send(_ write: (inout ByteBuffer) -> Void) throws {
        var buffer = channel.allocator.buffer(capacity: 64)
        write(&buffer)
        try channel.writeInbound(buffer)
    }

    func send(_ request: NBDRequest, payload: [UInt8]? = nil) throws {
        if request.command == .read && decoder.phase == .transmission {
            decoder.expectSimpleReadReply(cookie: request.cookie, length: Int(request.length))
        }
        try send { buffer in
            request.encode(into: &buffer)
            if let payload { buffer.writeBytes(payload) }
        }
    }

    /// Every message the server has sent so far.
    func receive() throws -> [NBDServerMessage] {
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            decoder.append(buffer)
        }
        var messages: [NBDServerMessage] = []
        while let message = try decoder.next() { messages.append(message) }
        return messages
    }

    func option(_ option: NBDOption, _ data: (inout ByteBuffer) -> Void = { _ in }) throws -> [NBDOptionReply] {
        var payload = ByteBuffer()
        data(&payload)
        try send { $0.writeNBDOption(option, data: payload) }
        return try receive().map { message in
            guard case .optionReply(let echoed, let reply) = message, echoed == option else {
                Issue.record("unexpected \(message)")
                return .ack
            }
            return reply
        }
    }

    /// Greeting, client flags, then (optionally) structured replies and `base:allocation`,
    /// then GO: what qemu-img and libnbd do.
    func handshake(export name: String = "disk", structured: Bool = true) throws {
        #expect(try receive() == [.greeting([.fixedNewstyle, .noZeroes])])
        try send { $0.writeNBDClientFlags([.fixedNewstyle, .noZeroes]) }
        if structured {
            #expect(try option(.structuredReply) == [.ack])
            #expect(try option(.setMetaContext) { NBDMetaContextRequest(exportName: name, queries: ["base:allocation"]).encode(into: &$0) }
                    == [.metaContext(id: 0, name: "base:allocation"), .ack])
        }
        let replies = try option(.go) { NBDExportInfoRequest(exportName: name, requestedInfo: [.blockSize]).encode(into: &$0) }
        #expect(replies.last == .ack)
        decoder.phase = .transmission
    }
}
