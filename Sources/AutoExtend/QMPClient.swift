import JSON
import NIOCore
import NIOPosix

/// A negotiated QMP connection to one daemon: commands with `execute`, events from `events`
/// (which ends when the connection does).
public final class QMPClient: Sendable {
    public let address: QMPAddress
    /// Events in arrival order; finishes when the connection closes.
    public let events: AsyncStream<QMPEvent>
    private let channel: any Channel

    private init(address: QMPAddress, channel: any Channel, events: AsyncStream<QMPEvent>) {
        self.address = address
        self.channel = channel
        self.events = events
    }

    /// Connects, waits for the greeting (at most `timeout`) and negotiates capabilities.
    public static func connect(
        to address: QMPAddress, group: any EventLoopGroup, timeout: TimeAmount = .seconds(10)
    ) async throws(QMPClientError) -> QMPClient {
        let loop = group.next()
        let greeting = loop.makePromise(of: Void.self)
        let (events, continuation) = AsyncStream.makeStream(of: QMPEvent.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(QMPClientHandler(greeting: greeting, events: continuation))
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
            continuation.finish()
            throw .connectFailed(address: address, reason: "\(error)")
        }
        let client = QMPClient(address: address, channel: channel, events: events)
        let deadline = loop.scheduleTask(in: timeout) { greeting.fail(QMPClientError.protocolViolation("no greeting within \(timeout)")) }
        do {
            try await greeting.futureResult.get()
            deadline.cancel()
            _ = try await client.execute("qmp_capabilities")
        } catch {
            deadline.cancel()
            await client.close()
            throw (error as? QMPClientError) ?? .connectionClosed
        }
        return client
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

    /// Completes when the connection has closed.
    public func closed() async {
        try? await channel.closeFuture.get()
    }
}
