import JSON
import NIOCore

/// The client side of one QMP connection: frames the daemon's JSON stream, completes each
/// command's promise by its `id`, and passes events on in arrival order.
///
/// Outbound it takes `Request`s: the handler numbers them, so ids are unique per connection
/// and replies can come in any order. When the connection ends, `ended` learns why.
final class QMPClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Request
    typealias OutboundOut = ByteBuffer

    struct Request: Sendable {
        var command: String
        var arguments: JSONObject?
        var reply: EventLoopPromise<JSONValue>
    }

    private var parser = JSONStreamParser()
    private var nextID: Int64 = 1
    private var pending: [Int64: Request] = [:]
    private let greeting: EventLoopPromise<QMPGreeting>
    private var greeted = false
    private let events: AsyncStream<QMPEvent>.Continuation
    private let ended: EventLoopPromise<QMPClientError>
    /// What waiting callers learn when the connection ends.
    private var endReason = QMPClientError.connectionClosed

    init(greeting: EventLoopPromise<QMPGreeting>, events: AsyncStream<QMPEvent>.Continuation, ended: EventLoopPromise<QMPClientError>) {
        self.greeting = greeting
        self.events = events
        self.ended = ended
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        let id = nextID
        nextID += 1
        pending[id] = request
        var message: JSONObject = ["execute": .string(request.command)]
        if let arguments = request.arguments { message["arguments"] = .object(arguments) }
        message["id"] = .int(id)
        var bytes = JSONValue.object(message).serialized()
        bytes.append(UInt8(ascii: "\n"))
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        parser.append(bytes: buffer.readableBytesView)
        while let item = parser.next() {
            switch item {
            case .value(let value):
                if let violation = handle(value) {
                    abandon(context: context, .protocolViolation(violation))
                    return
                }
            case .error(let description):
                abandon(context: context, .protocolViolation(description))
                return
            }
        }
    }

    /// Dispatches one message; returns what is wrong with it, if anything.
    private func handle(_ value: JSONValue) -> String? {
        guard let message = value.objectValue else { return "a message that is not an object" }
        if !greeted {
            guard let offer = message["QMP"] else { return "no greeting" }
            greeted = true
            greeting.succeed(QMPGreeting(offer))
            return nil
        }
        if let name = message["event"]?.stringValue {
            events.yield(QMPEvent(
                name: name, data: message["data"]?.objectValue ?? JSONObject(), timestamp: QMPTimestamp(message["timestamp"])))
            return nil
        }
        guard case .int(let id)? = message["id"], let request = pending.removeValue(forKey: id) else {
            return "a reply to no command"
        }
        if let result = message["return"] {
            request.reply.succeed(result)
        } else if let error = message["error"] {
            request.reply.fail(QMPClientError.commandFailed(
                command: request.command, errorClass: error["class"]?.stringValue ?? "",
                description: error["desc"]?.stringValue ?? ""))
        } else {
            return "a reply without return or error"
        }
        return nil
    }

    /// Closes a connection that cannot go on; whoever waits learns `reason`.
    private func abandon(context: ChannelHandlerContext, _ reason: QMPClientError) {
        endReason = reason
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        greeting.fail(endReason)
        for request in pending.values { request.reply.fail(endReason) }
        pending.removeAll()
        events.finish()
        ended.succeed(endReason)
        context.fireChannelInactive()
    }
}
