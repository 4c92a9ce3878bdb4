import Logging
import NBDWire
import NIOCore

/// Serves one NBD client: decodes its bytes, drives `NBDConnectionStateMachine`, runs the
/// requests on the server's `BlockIOExecutor` and writes the replies, in whatever order the
/// I/O completes.
///
/// Small requests recently observed to be fast run inline on the event loop; the others go
/// to the executor (see `NBDInlineIOPolicy`).
///
/// Flushing: replies written while a read burst is being processed are flushed once in
/// `channelReadComplete`; replies completed on I/O threads are drained in batches (one
/// event-loop hop, one flush per batch).
public final class NBDConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let server: NBDServer
    private let logger: Logger
    private var decoder = NBDServerDecoder()
    private var stateMachine: NBDConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var token: NBDConnectionToken?
    /// The export this connection is attached to in the registry.
    private var attachedExport: NBDExport?
    private let completions = NBDCompletionQueue()
    private var drained: [NBDCompletion] = []
    /// Recent service time of small requests, for `NBDInlineIOPolicy`.
    private var serviceTime = NBDServiceTimeEstimate()

    private var requestsInFlight = 0
    /// Data the requests in flight read or write: bounds the memory one client can pin.
    private var bytesInFlight = 0
    private var started = false
    /// Inside `channelRead`…`channelReadComplete`: flushing waits for the end of the burst.
    /// `write` never flushes; whoever ends a batch does.
    private var inReadBurst = false
    private var decoding = false
    private var needsFlush = false
    /// A `read()` from the pipeline held back while the connection is saturated.
    private var readHeld = false
    /// DISC received: close once the requests in flight have been answered.
    private var disconnectRequested = false
    private var closing = false

    init(server: NBDServer, logger: Logger) {
        self.server = server
        self.logger = logger
        self.stateMachine = NBDConnectionStateMachine(registry: server.registry, multipleConnections: server.maximumConnections != 1)
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        release()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closing = true
        stateMachine.closing()
        release()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Socket errors (a reset peer) are the client's business: no noise above debug.
        logger.debug("NBD connection error: \(error)")
        close(reason: nil)
    }

    /// The connection is up: count it (or refuse it over `max-connections`) and greet.
    private func start(context: ChannelHandlerContext) {
        guard !started, !closing else { return }
        started = true
        let token = NBDConnectionToken(channel: context.channel)
        guard server.connectionOpened(token) else {
            logger.info("NBD connection refused: max-connections reached")
            close(reason: nil)
            return
        }
        self.token = token
        context.writeAndFlush(wrapOutboundOut(stateMachine.greeting()), promise: nil)
    }

    /// Gives back the export binding and the connection slot (once).
    private func release() {
        detachFromExport()
        if let token { server.connectionClosed(token) }
        token = nil
    }

    private func detachFromExport() {
        if let export = attachedExport, let token {
            // Held writes of a closed connection are never answered.
            export.stalledWrites?.cancel(owner: ObjectIdentifier(token))
            server.registry.detach(token, from: export)
        }
        attachedExport = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        inReadBurst = true
        decoder.append(unwrapInboundIn(data))
        decodeBufferedMessages()
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    /// Handles every complete message received, as long as the connection is not saturated.
    private func decodeBufferedMessages() {
        guard !decoding else { return }
        decoding = true
        defer { decoding = false }
        while !closing && !disconnectRequested && !hasTooMuchInFlight {
            let message: NBDClientMessage?
            do {
                message = try decoder.next()
            } catch {
                close(reason: error.description)
                return
            }
            guard let message else { return }
            handle(message)
        }
    }

    private func handle(_ message: NBDClientMessage) {
        switch message {
        case .request(let request, let payload):
            switch stateMachine.requestReceived(request) {
            case .execute(let session):
                submit(request, payload: payload, session: session)
            case .reply(let reply):
                write(reply)
            case .disconnect:
                disconnectRequested = true
                closeIfDrained()
            case .ignore:
                break
            }

        case .option(let option, let data):
            switch stateMachine.optionReceived(option, data: data) {
            case .reply(let reply):
                write(reply)
            case .replyAndClose(let reply):
                write(reply)
                close(reason: nil)
            case .startTransmission(let reply, let session):
                write(reply)
                decoder.phase = .transmission
                guard let token, server.registry.attach(token, to: session.export) else {
                    close(reason: "export '\(session.export.name)' was removed during negotiation")
                    return
                }
                attachedExport = session.export
                logger.debug("NBD client connected", metadata: ["export": "\(session.export.name)"])
            case .close(let reason):
                close(reason: "option negotiation failed: \(reason)")
            }

        case .clientFlags(let flags):
            if let reason = stateMachine.clientFlagsReceived(flags) {
                close(reason: "option negotiation failed: \(reason)")
            } else {
                decoder.phase = .options
            }
        }
    }

    // MARK: Requests

    private func submit(_ request: NBDRequest, payload: ByteBuffer?, session: NBDTransmissionSession) {
        guard let context, let token else { return }
        let policy = server.inlineIO
        let isSample = policy.isSmall(request)
        let bytes = request.command == .read || request.command == .write ? Int(request.length) : 0
        if policy.runsInline(request, estimate: serviceTime) {
            let timer = NBDServiceTimer(events: server.blockEvents)
            let outcome = session.attempt(request, payload: payload)
            if let sample = timer.finish(), isSample { serviceTime.record(sample) }
            switch outcome {
            case .reply(let reply):
                write(reply)
            case .noSpace(let sizes, let failure):
                // Held: in flight until answered.
                requestsInFlight += 1
                bytesInFlight += bytes
                makeRequestIO(request, payload: payload, session: session, bytes: bytes, context: context, token: token)
                    .hold(volumeSizes: sizes, failure: failure)
            }
            return
        }
        requestsInFlight += 1
        bytesInFlight += bytes
        let io = makeRequestIO(request, payload: payload, session: session, bytes: bytes, context: context, token: token)
        server.executor.execute {
            io.run(sampled: isSample)
        }
    }

    /// A request on its way to the I/O threads, with the way back to this handler.
    private func makeRequestIO(
        _ request: NBDRequest, payload: ByteBuffer?, session: NBDTransmissionSession, bytes: Int,
        context: ChannelHandlerContext, token: NBDConnectionToken
    ) -> NBDRequestIO {
        let eventLoop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let completions = self.completions
        return NBDRequestIO(
            request: request, payload: payload, session: session, bytes: bytes, connection: token, server: server,
            eventLoop: eventLoop
        ) { completion in
            if eventLoop.inEventLoop {
                // An inline executor (or a held write answered by the ticker): no hop; a
                // read burst's flush covers the reply, else `requestCompleted` flushes.
                handler.value.requestCompleted(completion)
            } else if completions.append(completion) {
                eventLoop.execute { handler.value.drainCompletions() }
            }
        }
    }

    private func requestCompleted(_ completion: NBDCompletion) {
        requestsInFlight -= 1
        bytesInFlight -= completion.bytes
        if let sample = completion.serviceTime { serviceTime.record(sample) }
        write(completion.reply)
        if !decoding { afterCompletions() }
    }

    private func drainCompletions() {
        completions.takeAll(into: &drained)
        requestsInFlight -= drained.count
        for completion in drained {
            bytesInFlight -= completion.bytes
            if let sample = completion.serviceTime { serviceTime.record(sample) }
            write(completion.reply)
        }
        drained.removeAll(keepingCapacity: true)
        afterCompletions()
    }

    /// Room was made: answer DISC if it was the last request, go on decoding what the
    /// saturation held back, and reading.
    private func afterCompletions() {
        if disconnectRequested {
            flushIfNeeded()
            closeIfDrained()
            return
        }
        decodeBufferedMessages()
        if !inReadBurst { flushIfNeeded() }
        resumeReadingIfPossible()
    }

    private func closeIfDrained() {
        if requestsInFlight == 0 { close(reason: nil) }
    }

    // MARK: Outbound

    private func write(_ reply: ByteBuffer) {
        guard let context, !closing else { return }
        context.write(wrapOutboundOut(reply), promise: nil)
        needsFlush = true
    }

    private func flushIfNeeded() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }

    public func read(context: ChannelHandlerContext) {
        if isSaturated {
            readHeld = true
        } else {
            context.read()
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfPossible()
        context.fireChannelWritabilityChanged()
    }

    /// Too much running, or the peer does not read its replies: stop reading.
    private var isSaturated: Bool {
        hasTooMuchInFlight || !(context?.channel.isWritable ?? true)
    }

    /// At `maximumRequestsInFlight` requests, or at `maximumBytesInFlight` bytes of data
    /// (which a maximal 32 MiB request always fits below, so one request always runs).
    private var hasTooMuchInFlight: Bool {
        requestsInFlight >= server.maximumRequestsInFlight || bytesInFlight >= server.maximumBytesInFlight
    }

    private func resumeReadingIfPossible() {
        guard readHeld, !isSaturated, !closing, let context else { return }
        readHeld = false
        context.read()
    }

    /// Closes the connection after flushing what was written; `reason` is logged for
    /// abnormal ends.
    private func close(reason: String?) {
        guard !closing, let context else { return }
        if let reason { logger.info("Disconnect NBD client, due to: \(reason)") }
        flushIfNeeded()
        closing = true
        stateMachine.closing()
        context.close(promise: nil)
    }
}
