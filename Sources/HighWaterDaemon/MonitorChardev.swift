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
        var waiting: [any Channel] = []
    }

    private let state = Mutex(State())
    private let makeHandler: @Sendable () -> any ChannelHandler

    init(makeHandler: @escaping @Sendable () -> any ChannelHandler) {
        self.makeHandler = makeHandler
    }

    /// The child channel initializer of the monitor's listener.
    func accept(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.closeFuture.whenComplete { _ in self.closed(channel) }
        let serveNow = state.withLock { state in
            if state.isOpen && state.active == nil {
                state.active = channel
                return true
            }
            state.waiting.append(channel)
            return false
        }
        if serveNow { return serve(channel) }
        // Leave the input in the kernel until this client's turn.
        return channel.setOption(.autoRead, value: false)
    }

    /// Startup is complete: serve the first client that connected meanwhile, and later ones.
    func open() {
        let first = state.withLock { state -> (any Channel)? in
            state.isOpen = true
            guard state.active == nil, !state.waiting.isEmpty else { return nil }
            state.active = state.waiting.removeFirst()
            return state.active
        }
        if let first { resume(first) }
    }

    private func serve(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(makeHandler())
        }
    }

    private func closed(_ channel: any Channel) {
        let next = state.withLock { state -> (any Channel)? in
            state.waiting.removeAll { $0 === channel }
            guard state.active === channel else { return nil }
            state.active = state.waiting.isEmpty ? nil : state.waiting.removeFirst()
            return state.isOpen ? state.active : nil
        }
        if let next { resume(next) }
    }

    /// Serves a client that waited: the handler greets on being added to an active channel.
    private func resume(_ channel: any Channel) {
        channel.eventLoop.execute {
            _ = self.serve(channel).flatMap { channel.setOption(.autoRead, value: true) }
        }
    }
}
