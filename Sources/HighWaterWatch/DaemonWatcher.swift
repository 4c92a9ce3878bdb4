import JSON
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Watches one daemon: connects, runs a ``WatchSession`` over the connection, and when the
/// daemon goes away (or is not there yet) tries again with exponential backoff, until the
/// task is cancelled.
struct DaemonWatcher: Sendable {
    let target: WatchTarget
    /// Period of the slow refresh; nil refreshes on events only.
    let refreshInterval: Duration?
    let output: @Sendable (WatchRecord) -> Void

    /// First delay before reconnecting, and the longest.
    static let initialBackoff = Duration.milliseconds(250)
    static let maximumBackoff = Duration.seconds(5)

    private enum Input: Sendable {
        case session(WatchSession.Input)
        case closed(String)
    }

    func run() async {
        var delay = Self.initialBackoff
        var lastReason: String?
        while !Task.isCancelled {
            let (negotiated, reason) = await watchOnce()
            guard !Task.isCancelled else { return }
            if negotiated { delay = Self.initialBackoff }
            // A daemon that stays away is reported once, not at every attempt.
            if negotiated || reason != lastReason {
                let milliseconds = delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000
                output(WatchRecord(timestamp: .now, daemon: target.description,
                                   kind: .disconnected(reason: reason, retryMilliseconds: milliseconds)))
            }
            lastReason = negotiated ? nil : reason
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, Self.maximumBackoff)
        }
    }

    /// One connection, from connecting to its end: whether it got as far as a negotiated
    /// session, and why it ended.
    private func watchOnce() async -> (negotiated: Bool, reason: String) {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await connect()
        } catch {
            return (false, "cannot connect: \(Self.describe(connectionError: error))")
        }
        var negotiated = false
        do {
            let reason = try await channel.executeThenClose { inbound, outbound in
                try await serve(channel.channel, inbound: inbound, outbound: outbound) { negotiated = true }
            }
            return (negotiated, reason)
        } catch {
            return (negotiated, "\(error)")
        }
    }

    /// The system's text for a failed connect ("No such file or directory"), rather than
    /// NIO's descriptions of its internals.
    private static func describe(connectionError error: any Error) -> String {
        switch error {
        case let error as IOError:
            String(cString: strerror(error.errnoCode))
        case let error as NIOConnectionError:
            error.connectionErrors.last.map { describe(connectionError: $0.error) } ?? error.dnsAError.map { "\($0)" } ?? "\(error)"
        default:
            "\(error)"
        }
    }

    private func connect() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(5))
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel(wrappingChannelSynchronously: channel) }
        }
        switch target {
        case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: initializer)
        case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
        }
    }

    /// Feeds the session with messages and ticks until the connection ends; returns why.
    private func serve(
        _ channel: any Channel, inbound: NIOAsyncChannelInboundStream<ByteBuffer>,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, negotiated: () -> Void
    ) async throws -> String {
        let (inputs, continuation) = AsyncStream.makeStream(of: Input.self)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var parser = JSONStreamParser()
                do {
                    for try await buffer in inbound {
                        parser.append(bytes: buffer.readableBytesView)
                        while let item = parser.next() { continuation.yield(.session(.message(item))) }
                    }
                    continuation.yield(.closed("connection closed by the daemon"))
                } catch {
                    continuation.yield(.closed("\(error)"))
                }
                continuation.finish()
            }
            if let refreshInterval {
                group.addTask {
                    while true {
                        try await Task.sleep(for: refreshInterval)
                        continuation.yield(.session(.tick))
                    }
                }
            }
            var session = WatchSession(daemon: target.description)
            var reason = "cancelled"
            inputs: for await input in inputs {
                switch input {
                case .closed(let why):
                    reason = why
                    break inputs
                case .session(let input):
                    for action in session.handle(input, now: .now) {
                        switch action {
                        case .send(let message):
                            try await outbound.write(ByteBuffer(bytes: message.serialized() + [0x0A]))
                        case .record(let record):
                            if case .connected = record.kind { negotiated() }
                            output(record)
                        }
                    }
                }
            }
            // Ends the reader even if it does not heed cancellation.
            channel.close(promise: nil)
            group.cancelAll()
            continuation.finish()
            return reason
        }
    }
}
