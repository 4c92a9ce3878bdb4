import JSON
import NIOCore
import QMP
import QMPCommands
import Synchronization

/// One QMP monitor connection: feeds bytes to a `QMPSession`, runs the commands it yields
/// on the command thread one at a time, writes replies and events.
///
/// Replies and events go out through the connection's `MonitorOutput` in the order they
/// were produced, so the events a command causes precede its reply, as in QEMU. The command
/// thread sends a command's reply itself and goes back to sleep: the monitor's loop hears
/// of it only when more input waits behind the command, so a command whose reply fits in
/// the socket costs two thread wake-ups, not four (a manager re-arming a threshold writes
/// next, and every thread that still runs then competes with the write for a core).
final class QMPMonitorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    /// The part of a connection other threads may touch: event delivery and closing.
    final class Connection: Sendable {
        let channel: any Channel
        let output: MonitorOutput
        let pretty: Bool
        /// The session is in command mode (capabilities negotiated): events go out.
        let acceptsEvents = Atomic(false)

        init(channel: any Channel, output: MonitorOutput, pretty: Bool) {
            self.channel = channel
            self.output = output
            self.pretty = pretty
        }

        /// Writes the event from the calling thread (the one where it happened).
        func deliverEvent(name: String, data: JSONObject?, timestamp: (seconds: Int64, microseconds: Int64)) {
            guard acceptsEvents.load(ordering: .acquiring) else { return }
            output.send(QMPSession.event(name: name, data: data, timestamp: timestamp, pretty: pretty))
        }

        func close() -> EventLoopFuture<Void> {
            channel.close().recover { _ in }
        }
    }

    /// Whether a command runs (further input waits, so replies keep request order), shared
    /// by the monitor's loop and the command thread.
    final class CommandGate: Sendable {
        private struct State {
            var running = false
            var inputWaiting = false
        }

        private let state = Mutex(State())

        /// False while a command runs: the input that just arrived waits for `finish()`.
        func mayProceed() -> Bool {
            state.withLock { state in
                if state.running { state.inputWaiting = true }
                return !state.running
            }
        }

        /// A command starts; `inputWaiting` when more input is already there.
        func start(inputWaiting: Bool) {
            state.withLock { $0 = State(running: true, inputWaiting: inputWaiting) }
        }

        /// Ends the running command; true when input waits behind it.
        func finish() -> Bool {
            state.withLock { state in
                defer { state = State() }
                return state.inputWaiting
            }
        }
    }

    private var session: QMPSession
    private let executor: any QMPCommandExecutor
    private let runner: CommandRunner
    private let gate = CommandGate()
    private let hub: MonitorHub
    private let pretty: Bool
    private let output: MonitorOutput
    private var context: ChannelHandlerContext?
    private var connection: Connection?

    init(
        version: JSONValue, executor: any QMPCommandExecutor, runner: CommandRunner, hub: MonitorHub, output: MonitorOutput,
        pretty: Bool
    ) {
        self.session = QMPSession(version: version, commandNames: executor.commandNames, pretty: pretty)
        self.executor = executor
        self.runner = runner
        self.hub = hub
        self.output = output
        self.pretty = pretty
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let connection = Connection(channel: context.channel, output: output, pretty: pretty)
        self.connection = connection
        hub.register(connection)
        // A client that waited for its turn on the chardev is already connected.
        if context.channel.isActive { greet() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        output.close()
        if let connection { hub.unregister(connection) }
        self.connection = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        greet()
        context.fireChannelActive()
    }

    private func greet() {
        send(session.greeting())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { session.receive($0) }
        processActions()
    }

    private func processActions() {
        guard let context, context.channel.isActive, gate.mayProceed() else { return }
        while let action = session.nextAction() {
            switch action {
            case .send(let bytes):
                send(bytes)
            case .execute(let request):
                gate.start(inputWaiting: session.hasInputWaiting)
                let executor = self.executor
                let output = self.output
                let gate = self.gate
                let pretty = self.pretty
                let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
                runner.submit {
                    let result = executor.execute(request)
                    // The reply goes out before the events QEMU sends after it.
                    output.send(QMPSession.response(to: request, result: result, pretty: pretty))
                    executor.commandReplied()
                    if gate.finish() {
                        handler.eventLoop.execute { handler.value.processActions() }
                    }
                }
                return
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        output.close()
        if let connection { hub.unregister(connection) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Sends what the session produced. Events are let through from the moment the session
    /// is in command mode, before the reply that put it there reaches the client: a client
    /// that acts on that reply must not miss the events its action causes.
    private func send(_ bytes: [UInt8]) {
        connection?.acceptsEvents.store(session.acceptsEvents, ordering: .releasing)
        output.send(bytes)
    }
}
