import JSON
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A negotiated QMP connection to one daemon: commands with `execute`, events from `events`
/// (which ends when the connection does).
public final class QMPClient: Sendable {
    public let address: QMPAddress
    /// What the monitor said about itself.
    public let greeting: QMPGreeting
    /// Events in arrival order; finishes when the connection closes.
    public let events: AsyncStream<QMPEvent>
    private let channel: any Channel
    private let ended: EventLoopFuture<QMPClientError>

    private init(
        address: QMPAddress, greeting: QMPGreeting, channel: any Channel, events: AsyncStream<QMPEvent>,
        ended: EventLoopFuture<QMPClientError>
    ) {
        self.address = address
        self.greeting = greeting
        self.channel = channel
        self.events = events
        self.ended = ended
    }

    /// Connects, waits for the greeting (at most `timeout`) and negotiates capabilities.
    public static func connect(
        to address: QMPAddress, group: any EventLoopGroup, timeout: TimeAmount = .seconds(10)
    ) async throws(QMPClientError) -> QMPClient {
        let loop = group.next()
        let greeting = loop.makePromise(of: QMPGreeting.self)
        let ended = loop.makePromise(of: QMPClientError.self)
        let (events, continuation) = AsyncStream.makeStream(of: QMPEvent.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        QMPClientHandler(greeting: greeting, events: continuation, ended: ended))
                }
            }
        let channel: any Channel
        do {
            switch address {
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            greeting.fail(QMPClientError.connectionClosed)
            ended.succeed(.connectionClosed)
            continuation.finish()
            throw .connectFailed(address: address, reason: describe(connectionError: error))
        }
        let deadline = loop.scheduleTask(in: timeout) { greeting.fail(QMPClientError.protocolViolation("no greeting within \(timeout)")) }
        let offer: QMPGreeting
        do {
            offer = try await greeting.futureResult.get()
            deadline.cancel()
        } catch {
            deadline.cancel()
            try? await channel.close()
            throw (error as? QMPClientError) ?? .connectionClosed
        }
        let client = QMPClient(address: address, greeting: offer, channel: channel, events: events, ended: ended.futureResult)
        do {
            _ = try await client.execute("qmp_capabilities")
        } catch {
            await client.close()
            throw error
        }
        return client
    }

    /// The system's text for a failed connect ("No such file or directory"), rather than
    /// NIO's descriptions of its internals.
    static func describe(connectionError error: any Error) -> String {
        switch error {
        case let error as IOError:
            String(cString: strerror(error.errnoCode))
        case let error as NIOConnectionError:
            error.connectionErrors.last.map { describe(connectionError: $0.error) } ?? error.dnsAError.map { "\($0)" } ?? "\(error)"
        default:
            "\(error)"
        }
    }

    /// Runs one command; returns its `return` value.
    public func execute(_ command: String, arguments: JSONObject? = nil) async throws(QMPClientError) -> JSONValue {
        let reply = channel.eventLoop.makePromise(of: JSONValue.self)
        channel.writeAndFlush(QMPClientHandler.Request(command: command, arguments: arguments, reply: reply))
            .whenFailure { _ in reply.fail(QMPClientError.connectionClosed) }
        do {
            return try await reply.futureResult.get()
        } catch {
            throw (error as? QMPClientError) ?? .connectionClosed
        }
    }

    /// Closes the connection; `events` then finishes.
    public func close() async {
        try? await channel.close()
    }

    /// Waits until the connection has ended; returns why (`connectionClosed` when either
    /// side simply closed it).
    public func closed() async -> QMPClientError {
        (try? await ended.get()) ?? .connectionClosed
    }
}
