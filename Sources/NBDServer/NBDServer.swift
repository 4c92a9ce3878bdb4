import BlockCore
import Logging
import NIOCore
import Synchronization

/// The NBD server: its exports, its connections, and the handler serving each connection.
/// The daemon owns the listening sockets; for each accepted channel it calls
/// `configure(channel:)` (or adds `makeConnectionHandler()` itself).
///
/// I/O policy: small reads and writes that were recently fast (page-cache hits) run inline
/// on the connection's event loop; everything else is handed to `executor` (a thread pool,
/// as QEMU's aio=threads), one work item per request — see `NBDInlineIOPolicy`. Completions
/// come back to the event loop in batches (one hop and one flush per burst). Each connection
/// keeps at most `maximumRequestsInFlight` requests and `maximumBytesInFlight` bytes of
/// READ/WRITE data running and stops reading from the socket beyond that, or while the peer
/// does not read its replies.
///
/// Exports with `on-enospc=hold` keep writes that find no space until their volume grows
/// (`NBDStalledWrites`); `onWriteStall` hears of each stall (the daemon turns it into a
/// `BLOCK_IO_ERROR` event).
public final class NBDServer: Sendable {
    public let registry: NBDExportRegistry
    /// 0 means unlimited (`nbd-server-start max-connections`).
    public let maximumConnections: Int
    let executor: any BlockIOExecutor
    let maximumRequestsInFlight: Int
    let maximumBytesInFlight: Int
    let inlineIO: NBDInlineIOPolicy
    /// The block layer's events: a request that fired one is no sample of I/O speed, and
    /// its thread yields after it (see `NBDServiceTimer`).
    let blockEvents: BlockEventCounter?
    let logger: Logger
    private let connectionCountDidChange: (@Sendable (Int) -> Void)?
    private let onWriteStall: (@Sendable (NBDExport) -> Void)?
    private let connections = Mutex<[ObjectIdentifier: NBDConnectionToken]>([:])
    private let nextConnectionNumber = Atomic<UInt64>(1)

    public init(registry: NBDExportRegistry, executor: any BlockIOExecutor, maximumConnections: Int = 0,
                maximumRequestsInFlight: Int = 64, maximumBytesInFlight: Int = 64 << 20, inlineIO: NBDInlineIOPolicy = .adaptive,
                blockEvents: BlockEventCounter? = nil, logger: Logger,
                connectionCountDidChange: (@Sendable (Int) -> Void)? = nil,
                onWriteStall: (@Sendable (NBDExport) -> Void)? = nil) {
        self.registry = registry
        self.executor = executor
        self.maximumConnections = maximumConnections
        self.maximumRequestsInFlight = max(1, maximumRequestsInFlight)
        self.maximumBytesInFlight = max(1, maximumBytesInFlight)
        self.inlineIO = inlineIO
        self.blockEvents = blockEvents
        self.logger = logger
        self.connectionCountDidChange = connectionCountDidChange
        self.onWriteStall = onWriteStall
    }

    /// Connections open right now (negotiating or transmitting).
    public var connectionCount: Int {
        connections.withLock { $0.count }
    }

    /// False once `max-connections` clients are connected: the daemon should stop accepting
    /// (QEMU stops listening) until one leaves — `connectionCountDidChange` tells when. A
    /// connection added anyway is closed at once.
    public var canAcceptConnection: Bool {
        maximumConnections == 0 || connectionCount < maximumConnections
    }

    /// A handler serving one client connection; add it as the only handler of the channel.
    public func makeConnectionHandler() -> NBDConnectionHandler {
        var logger = logger
        logger[metadataKey: "nbd-connection"] = "\(nextConnectionNumber.wrappingAdd(1, ordering: .relaxed).oldValue)"
        return NBDConnectionHandler(server: self, logger: logger)
    }

    /// Sets up a freshly accepted channel: receive buffers that may grow to 4 MiB (a large
    /// WRITE payload then arrives in few reads, mostly as one slice, instead of 64 KiB pieces
    /// copied together), and the connection handler.
    public func configure(channel: any Channel) -> EventLoopFuture<Void> {
        channel.setOption(ChannelOptions.recvAllocator, value: Self.receiveAllocator).flatMapThrowing {
            // Callbacks of the channel's futures run on its event loop.
            try channel.pipeline.syncOperations.addHandler(self.makeConnectionHandler())
        }
    }

    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 4 << 20)

    /// Closes every connection, negotiating or not (`nbd-server-stop`, with
    /// `registry.removeAll()`).
    public func closeAllConnections() {
        let all = connections.withLock { Array($0.values) }
        for connection in all { connection.close() }
    }

    /// Counts a new connection; false when over the limit.
    func connectionOpened(_ token: NBDConnectionToken) -> Bool {
        let count: Int? = connections.withLock { connections in
            guard maximumConnections == 0 || connections.count < maximumConnections else { return nil }
            connections[ObjectIdentifier(token)] = token
            return connections.count
        }
        guard let count else { return false }
        connectionCountDidChange?(count)
        return true
    }

    /// An export with `on-enospc=hold` stalled: a write found no space and is held (told
    /// once per stall; see `NBDStalledWrites`). Runs on an I/O thread or an event loop.
    func reportWriteStall(_ export: NBDExport) {
        onWriteStall?(export)
    }

    func connectionClosed(_ token: NBDConnectionToken) {
        let count: Int? = connections.withLock { connections in
            connections.removeValue(forKey: ObjectIdentifier(token)) == nil ? nil : connections.count
        }
        if let count { connectionCountDidChange?(count) }
    }
}
