import BlockCore
import Dispatch
import JSON
import NBDServer
import QAPI
import QMP
import Synchronization

/// Receives QMP events from the command layer (the monitors, which also log them).
public protocol QMPEventEmitter: Sendable {
    func emit(_ name: String, data: JSONObject?)
}

/// Starts and stops the NBD server's listener; the daemon implements it with sockets.
public protocol NBDServerControl: Sendable {
    /// The running server, nil when stopped.
    var server: NBDServer? { get }
    /// Binds the listener. Errors carry QEMU's texts.
    func start(_ options: NBDServerOptions) throws
    /// Closes the listener (exports are removed by the caller).
    func stop()
}

/// The daemon's QMP commands: thin adapters from QAPI arguments to the block graph and the
/// NBD exports. `execute` must be called from one thread at a time (the monitors ensure it).
public final class HighWaterCommands: QMPCommandExecutor {
    /// Everything the commands act on.
    public struct Context: Sendable {
        public var graph: BlockGraph
        public var exports: NBDExportRegistry
        public var nbd: any NBDServerControl
        public var events: any QMPEventEmitter
        /// Where the nodes' events go: by default straight to `events` as QMP events.
        public var blockEvents: any BlockEventSink
        /// Called by `quit` after the exports are gone; the daemon shuts down after the reply.
        public var requestShutdown: @Sendable () -> Void

        public init(graph: BlockGraph, exports: NBDExportRegistry, nbd: any NBDServerControl,
                    events: any QMPEventEmitter, blockEvents: (any BlockEventSink)? = nil,
                    requestShutdown: @escaping @Sendable () -> Void) {
            self.graph = graph
            self.exports = exports
            self.nbd = nbd
            self.events = events
            self.blockEvents = blockEvents ?? QMPBlockEventSink(events: events)
            self.requestShutdown = requestShutdown
        }
    }

    /// The `query-version` answer: QEMU 7.2's version, since clients decide features by it.
    public static let version: JSONValue = [
        "qemu": ["micro": 0, "minor": 2, "major": 7],
        "package": "HighWater 0.1",
    ]

    /// Every command but `qmp_capabilities`, which the session handles itself.
    static let table: QMPCommandTable = {
        var table = QMPCommandTable()
        registerControlCommands(in: &table)
        registerBlockCommands(in: &table)
        registerWriteThresholdCommands(in: &table)
        registerExportCommands(in: &table)
        registerObjectCommands(in: &table)
        return table
    }()

    let context: Context
    /// The permission claim each live export holds on its node.
    let exportClaims = Mutex<[ObjectIdentifier: BlockClaimToken]>([:])
    /// Signalled whenever an export is really gone.
    let exportDeletions = DispatchSemaphore(value: 0)
    let deletionEvents = Mutex(DeletionEvents())
    /// The ids of `object-add`/`--object` objects.
    let objects = Mutex<Set<String>>([])

    public init(context: Context) {
        self.context = context
    }

    public var commandNames: Set<String> { Self.commandNames }
    static let commandNames = Set(table.handlers.keys).union(["qmp_capabilities"])

    public func execute(_ request: QMPRequest) -> Result<JSONValue, QMPError> {
        guard let handler = Self.table.handlers[request.command] else {
            return .failure(QMPError.commandNotFound("The command \(request.command) has not been found"))
        }
        // Whatever the command did, it may have grown a node under an export holding writes.
        defer { context.exports.volumesMayHaveGrown() }
        do {
            return .success(try handler(self, request.arguments))
        } catch {
            return .failure(QMPError(converting: error))
        }
    }

    // The command-line forms run the same code as their QMP commands.

    /// `--blockdev`: `blockdev-add`.
    public func addBlockdev(arguments: JSONObject, mode: QAPIInputMode) throws {
        try addBlockdev(BlockdevOptions.decode(arguments, mode: mode))
    }

    /// `--export`: `block-export-add`.
    public func addExport(arguments: JSONObject, mode: QAPIInputMode) throws {
        try addExport(BlockExportOptions.decode(arguments, mode: mode))
    }

    /// `--object`: `object-add`.
    public func addObject(arguments: JSONObject, mode: QAPIInputMode) throws {
        try addObject(ObjectOptions.decode(arguments, mode: mode))
    }

    /// `--nbd-server`: `nbd-server-start`, with a flat `SocketAddress` instead of QMP's
    /// legacy `{"type", "data"}` form.
    public func startNBDServer(flatArguments: JSONObject, mode: QAPIInputMode) throws {
        try startNBDServer(NBDServerOptions.decodeCommandLine(flatArguments, mode: mode))
    }
}

extension QMPError {
    /// The one conversion of the layers' typed errors to QMP: their descriptions are QEMU's texts.
    init(converting error: any Error) {
        if let error = error as? QMPError { self = error; return }
        self = .generic(String(describing: error))
    }
}
