import JSON
import NIOCore
import QMP
import QMPCommands

/// One QMP monitor connection: feeds bytes to a `QMPSession`, runs the commands it yields
/// on the command thread one at a time, writes replies and events.
///
/// Events and replies both reach the channel through its event loop in the order they were
/// produced, so the events a command causes precede its reply, as in QEMU.
final class QMPMonitorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The part of a connection other threads may touch: event delivery and closing.
    final class Connection: Sendable {
        let channel: any Channel
        private let handler: NIOLoopBound<QMPMonitorHandler>

        init(channel: any Channel, handler: QMPMonitorHandler) {
            self.channel = channel
            self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }

        func deliverEvent(name: String, data: JSONObject?, timestamp: (seconds: Int64, microseconds: Int64)) {
            // Always through the loop's queue, even from the loop itself: a reply queued
            // earlier must go out first.
            let handler = self.handler
            channel.eventLoop.execute { handler.value.writeEvent(name: name, data: data, timestamp: timestamp) }
        }

        func close() -> EventLoopFuture<Void> {
            channel.close().recover { _ in }
        }
    }

    private var session: QMPSession
    private let executor: any QMPCommandExecutor
    private let runner: CommandRunner
    /// A command is running: further input waits, so replies keep request order.
    private var commandRunning = false
    private let hub: MonitorHub
    private let pretty: Bool
    private var context: ChannelHandlerContext?
    private var connection: Connection?

    init(version: JSONValue, executor: any QMPCommandExecutor, runner: CommandRunner, hub: MonitorHub, pretty: Bool) {
        self.session = QMPSession(version: version, commandNames: executor.commandNames, pretty: pretty)
        self.executor = executor
        self.runner = runner
        self.hub = hub
        self.pretty = pretty
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let connection = Connection(channel: context.channel, handler: self)
        self.connection = connection
        hub.register(connection)
        // A client that waited for its turn on the chardev is already connected.
        if context.channel.isActive { greet() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let connection { hub.unregister(connection) }
        self.connection = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        greet()
        context.fireChannelActive()
    }

    private func greet() {
        send(session.greeting(), flush: true)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { session.receive($0) }
        processActions()
    }

    private func processActions() {
        guard let context else { return }
        while !commandRunning, let action = session.nextAction() {
            switch action {
            case .send(let bytes):
                send(bytes, flush: false)
            case .execute(let request):
                commandRunning = true
                let executor = self.executor
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                runner.submit {
                    let result = executor.execute(request)
                    handler.eventLoop.execute {
                        handler.value.commandFinished(request, result: result)
                    }
                    executor.commandReplied()
                }
            }
        }
        context.flush()
    }

    private func commandFinished(_ request: QMPRequest, result: Result<JSONValue, QMPError>) {
        commandRunning = false
        send(session.response(to: request, result: result), flush: false)
        processActions()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection { hub.unregister(connection) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    fileprivate func writeEvent(name: String, data: JSONObject?, timestamp: (seconds: Int64, microseconds: Int64)) {
        guard session.acceptsEvents else { return }
        send(QMPSession.event(name: name, data: data, timestamp: timestamp, pretty: pretty), flush: true)
    }

    private func send(_ bytes: [UInt8], flush: Bool) {
        guard let context, context.channel.isActive else { return }
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        if flush {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
    }
}
