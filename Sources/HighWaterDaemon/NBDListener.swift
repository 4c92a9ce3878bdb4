import BlockCore
import Logging
import NBDServer
import NIOCore
import NIOPosix
import QAPI
import QMPCommands
import Synchronization

/// The NBD server's listening socket (`--nbd-server`, `nbd-server-start`/`-stop`).
final class NBDListener: NBDServerControl {
    private struct Running {
        let server: NBDServer
        let channel: any Channel
    }

    private let group: any EventLoopGroup
    private let registry: NBDExportRegistry
    private let executor: any BlockIOExecutor
    private let blockEvents: BlockEventCounter
    private let logger: Logger
    private let onWriteStall: @Sendable (NBDExport) -> Void
    private let running = Mutex<Running?>(nil)

    init(group: any EventLoopGroup, registry: NBDExportRegistry, executor: any BlockIOExecutor,
         blockEvents: BlockEventCounter, logger: Logger, onWriteStall: @escaping @Sendable (NBDExport) -> Void) {
        self.group = group
        self.registry = registry
        self.executor = executor
        self.blockEvents = blockEvents
        self.logger = logger
        self.onWriteStall = onWriteStall
    }

    var server: NBDServer? { running.withLock { $0?.server } }

    func start(_ options: NBDServerOptions) throws {
        let server = NBDServer(
            registry: registry, executor: executor, maximumConnections: Int(options.maxConnections), blockEvents: blockEvents,
            logger: logger,
            onWriteStall: onWriteStall)
        let address = try ListenAddress(options.address)
        let channel = try SocketListener.bind(address, group: group) { channel in
            server.configure(channel: channel)
        }
        running.withLock { $0 = Running(server: server, channel: channel) }
        logger.info("NBD server listening on \(address)")
    }

    func stop() {
        guard let stopped = running.withLock({ running in defer { running = nil }; return running }) else { return }
        stopped.channel.close(promise: nil)
        stopped.server.closeAllConnections()
    }
}
