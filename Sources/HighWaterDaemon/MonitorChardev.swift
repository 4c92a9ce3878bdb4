import NIOCore
import Synchronization

/// A monitor's character device serves one client at a time, as QEMU's socket chardev does:
/// a second client is accepted by the kernel but gets its greeting, and its input is read,
/// only once the first has gone. No client is served before the daemon's startup is complete
/// (`open()`), as QEMU's main loop only runs then: a greeting means the daemon is ready.
final class MonitorChardev: Sendable {
    private struct State {
        var isOpen = false
        var active: (any Channel)?
        var waiting: [Client] = []

        /// The first waiting client becomes the active one.
        mutating func takeNext() -> Client {
            let next = waiting.removeFirst()
            active = next.channel
            return next
        }
    }

    /// A connected client and the way to write to it.
    struct Client: Sendable {
        let channel: any Channel
        let output: MonitorOutput
    }

    private let state = Mutex(State())
    private let makeHandler: @Sendable (MonitorOutput) -> any ChannelHandler

    init(makeHandler: @escaping @Sendable (MonitorOutput) -> any ChannelHandler) {
        self.makeHandler = makeHandler
    }

    /// The channel initializer of a client's connection.
    func accept(_ client: Client) -> EventLoopFuture<Void> {
        let channel = client.channel
        channel.closeFuture.whenComplete { _ in self.closed(channel) }
        let serveNow = state.withLock { state in
            if state.isOpen && state.active == nil {
                state.active = channel
                return true
            }
            state.waiting.append(client)
            return false
        }
        if serveNow { return serve(client) }
        // Leave the input in the kernel until this client's turn.
        return channel.setOption(.autoRead, value: false)
    }

    /// Startup is complete: serve the first client that connected meanwhile, and later ones.
    func open() {
        let first = state.withLock { state -> Client? in
            state.isOpen = true
            guard state.active == nil, !state.waiting.isEmpty else { return nil }
            return state.takeNext()
        }
        if let first { resume(first) }
    }

    private func serve(_ client: Client) -> EventLoopFuture<Void> {
        client.channel.eventLoop.makeCompletedFuture {
            try client.channel.pipeline.syncOperations.addHandler(makeHandler(client.output))
        }
    }

    private func closed(_ channel: any Channel) {
        let next = state.withLock { state -> Client? in
            state.waiting.removeAll { $0.channel === channel }
            guard state.active === channel else { return nil }
            state.active = nil
            guard state.isOpen, !state.waiting.isEmpty else { return nil }
            return state.takeNext()
        }
        if let next { resume(next) }
    }

    /// Serves a client that waited: the handler greets on being added to an active channel.
    private func resume(_ client: Client) {
        client.channel.eventLoop.execute {
            _ = self.serve(client).flatMap { client.channel.setOption(.autoRead, value: true) }
        }
    }
}
