import JSON
import NIOCore
import NIOPosix

/// A QMP monitor just good enough for the client: greets, answers every command with its
/// name (after an event, to show events and replies interleave), and fails `fail`.
final class FakeMonitor: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Listens on a fresh UNIX socket; returns the server channel and its path.
    static func start() async throws -> (server: any Channel, path: String) {
        let path = "/tmp/hw-qmpclient-\(UInt32.random(in: 0...UInt32.max)).sock"
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(FakeMonitor()) }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        return (server, path)
    }

    func channelActive(context: ChannelHandlerContext) {
        send(["QMP": ["version": ["qemu": ["major": 7, "minor": 2, "micro": 0], "package": ""], "capabilities": ["oob"]]], context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Each test command arrives in one read.
        var parser = JSONStreamParser()
        parser.append(bytes: unwrapInboundIn(data).readableBytesView)
        while case .value(let request)? = parser.next() {
            let command = request["execute"]?.stringValue ?? ""
            let id = request["id"] ?? .null
            if command == "fail" {
                send(["error": ["class": "GenericError", "desc": "failed as asked"], "id": id], context)
            } else {
                send(["event": "COMMAND", "data": ["name": .string(command)], "timestamp": ["seconds": 1, "microseconds": 2]], context)
                send(["return": .string(command), "id": id], context)
            }
        }
    }

    private func send(_ message: JSONValue, _ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: message.serialized() + [0x0A])), promise: nil)
    }
}
