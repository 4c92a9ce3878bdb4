import BlockCore
import JSON
import Logging
import NBDServer
import NIOCore
import NIOPosix
import QAPI
import QMP
import QMPCommands
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Everything a running daemon owns, wired together: the composition root.
final class DaemonRuntime: Sendable {
    let logger: Logger
    let eventLoops: MultiThreadedEventLoopGroup
    /// The monitors' own loop (QEMU's main loop): events reach QMP clients without waiting
    /// behind NBD work on a shared loop.
    let monitorLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let ioExecutor: ThreadPoolBlockIOExecutor
    let runner = CommandRunner()
    let hub: MonitorHub
    let graph = BlockGraph()
    let exports: NBDExportRegistry
    let nbd: NBDListener
    let commands: HighWaterCommands

    private struct Startup {
        var chardevs: [String: ChardevOptions] = [:]
        var chardevsInUse: Set<String> = []
    }

    private let startup = Mutex(Startup())
    private let monitorListeners = Mutex<[MonitorListener]>([])
    /// `--chardev stdio` monitors.
    private let stdioChannels = Mutex<[any Channel]>([])
    private let monitors = Mutex<[MonitorChardev]>([])
    private let pidFile = Mutex<PIDFile?>(nil)
    private let isShutDown = Atomic<Bool>(false)
    /// What `quit` triggers once the exports are gone.
    let quitTrigger = ShutdownTrigger()

    init(logger: Logger) {
        self.logger = logger
        eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        ioExecutor = ThreadPoolBlockIOExecutor(threads: max(4, System.coreCount * 2))
        hub = MonitorHub(logger: logger)
        let deletedExports = ExportDeletionForwarder()
        exports = NBDExportRegistry(onExportDeleted: { deletedExports.forward($0) })
        let qmpBlockEvents = QMPBlockEventSink(events: hub)
        let blockEvents = BlockEventCounter(forwardingTo: qmpBlockEvents)
        nbd = NBDListener(group: eventLoops, registry: exports, executor: ioExecutor, blockEvents: blockEvents, logger: logger) { export in
            qmpBlockEvents.writeStalledOnNoSpace(nodeName: export.node.name)
        }
        let quitTrigger = self.quitTrigger
        commands = HighWaterCommands(context: .init(
            graph: graph, exports: exports, nbd: nbd, events: hub, blockEvents: blockEvents,
            requestShutdown: { quitTrigger.fire() }))
        deletedExports.target = commands
    }

    /// Runs `work` on the command thread and waits for it: startup runs there too, so that a
    /// client connecting early queues behind it.
    func runOnCommandThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            runner.submit { continuation.resume(with: Result { try work() }) }
        }
    }

    func runOnCommandThread(_ work: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { continuation in
            runner.submit { work(); continuation.resume() }
        }
    }

    // MARK: Command line

    /// Executes the options in order; the first error ends startup. Errors and warnings are
    /// reported as QEMU does: `<option as typed>: <message>`.
    func process(_ options: [QSDOption]) throws {
        for option in options {
            do {
                try process(option)
            } catch let error as QAPIError {
                throw DaemonStartupError("\(option.location): \(error.description)", hint: error.hint)
            } catch {
                throw DaemonStartupError("\(option.location): \(error)")
            }
        }
        if let path = options.last(where: { $0.kind == .pidfile })?.argument {
            let file = try PIDFile(path: path)
            pidFile.withLock { $0 = file }
        }
        for monitor in monitors.withLock({ $0 }) { monitor.open() }
    }

    private func process(_ option: QSDOption) throws {
        switch option.kind {
        case .blockdev:
            let (object, mode) = try QSDCommandLine.structuredArgument(option, parseJSON: Self.parseJSONObject)
            try commands.addBlockdev(arguments: object, mode: mode)
        case .export:
            let (object, mode) = try QSDCommandLine.structuredArgument(option, parseJSON: Self.parseJSONObject)
            try commands.addExport(arguments: object, mode: mode)
        case .nbdServer:
            let (object, mode) = try QSDCommandLine.structuredArgument(option, parseJSON: Self.parseJSONObject)
            try commands.startNBDServer(flatArguments: object, mode: mode)
        case .chardev:
            try addChardev(option)
        case .monitor:
            let (object, mode) = try QSDCommandLine.structuredArgument(option, parseJSON: Self.parseJSONObject)
            let monitor = try MonitorOptions.decode(object, mode: mode)
            let chardev = try startup.withLock { (startup: inout Startup) throws -> ChardevOptions in
                guard let chardev = startup.chardevs[monitor.chardev] else {
                    throw DaemonStartupError("chardev \"\(monitor.chardev)\" not found")
                }
                guard monitor.mode == .control else { throw MonitorOptions.onlyQMPSupported }
                guard startup.chardevsInUse.insert(monitor.chardev).inserted else {
                    throw DaemonStartupError("Device '\(monitor.chardev)' is in use")
                }
                return chardev
            }
            try openMonitor(on: chardev, pretty: monitor.pretty)
        case .object:
            let (object, mode) = try QSDCommandLine.structuredArgument(option, parseJSON: Self.parseJSONObject)
            try commands.addObject(arguments: object, mode: mode)
        case .unexpectedArgument:
            throw DaemonStartupError(QSDOption.unexpectedArgumentMessage)
        case .pidfile, .help, .version, .daemonize:
            break
        case .trace:
            StorageDaemon.printWarning(at: option.location, "tracing is not supported; ignored")
        }
    }

    private func addChardev(_ option: QSDOption) throws {
        let result = try ChardevOptions.parse(option.argument ?? "") { warning in
            StorageDaemon.printWarning(at: option.location, warning.message, hint: warning.hint)
        }
        switch result {
        case .listBackends, .listOptions:
            throw DaemonStartupError("Help is not available for this option")
        case .chardev(let chardev):
            switch chardev.backend {
            case .socket(let socket) where !socket.server:
                throw DaemonStartupError("HighWater monitors listen: use server=on")
            case .socket, .stdio:
                break
            case .other(let name):
                throw DaemonStartupError("chardev backend '\(name)' is not supported by HighWater (use socket or stdio)")
            }
            try startup.withLock { (startup: inout Startup) throws in
                guard startup.chardevs[chardev.id] == nil else { throw DaemonStartupError("duplicate yank instance") }
                startup.chardevs[chardev.id] = chardev
            }
        }
    }

    /// The `{...}` form of an option argument: exactly one JSON object in QEMU's dialect.
    @Sendable static func parseJSONObject(_ text: String) throws -> JSONObject {
        var parser = JSONStreamParser()
        // The trailing space ends a top-level token that would otherwise wait for more input.
        parser.append(bytes: text.utf8)
        parser.append(bytes: [0x20])
        let object: JSONObject
        switch parser.next() {
        case .value(.object(let value)): object = value
        case .value: throw DaemonStartupError("Invalid parameter type, expected: object")
        case .error(let message): throw DaemonStartupError(message)
        case nil: throw DaemonStartupError("JSON parse error, premature EOI")
        }
        guard parser.next() == nil else { throw DaemonStartupError("Expecting at most one JSON value") }
        return object
    }

    // MARK: Monitors

    private func openMonitor(on chardev: ChardevOptions, pretty: Bool) throws {
        let hub = self.hub, commands = self.commands, runner = self.runner
        let monitor = MonitorChardev {
            QMPMonitorHandler(
                version: HighWaterCommands.version, executor: commands, runner: runner, hub: hub, output: $0, pretty: pretty)
        }
        monitors.withLock { $0.append(monitor) }
        switch chardev.backend {
        case .socket(let socket):
            let loop = monitorLoop.next()
            let listener = try MonitorListener(ListenAddress(socket.address)) { descriptor in
                Self.serve(connection: descriptor, on: loop, monitor: monitor)
            }
            monitorListeners.withLock { $0.append(listener) }
        case .other:
            preconditionFailure("unsupported chardevs are refused by --chardev")
        case .stdio:
            // Standard output may be anything (a terminal, a pipe, a file): written through
            // the channel only.
            let channel = try NIOPipeBootstrap(group: monitorLoop)
                .channelInitializer { monitor.accept(.init(channel: $0, output: MonitorOutput(channel: $0, descriptor: nil))) }
                .takingOwnershipOfDescriptors(input: dup(0), output: dup(1))
                .wait()
            stdioChannels.withLock { $0.append(channel) }
        }
    }

    /// Hands an accepted monitor connection to NIO, keeping a duplicate of its socket for
    /// the connection's output.
    private static func serve(connection descriptor: CInt, on loop: any EventLoop, monitor: MonitorChardev) {
        let outputDescriptor = dup(descriptor)
        guard outputDescriptor >= 0 else {
            close(descriptor)
            return
        }
        ClientBootstrap(group: loop)
            .channelInitializer { channel in
                monitor.accept(.init(channel: channel, output: MonitorOutput(channel: channel, descriptor: outputDescriptor)))
            }
            .withConnectedSocket(descriptor)
            .whenFailure { _ in
                close(outputDescriptor)
                close(descriptor)
            }
    }

    // MARK: Shutdown

    /// QEMU's order: exports deleted (their events reach the monitors), NBD server stopped,
    /// monitors closed, QMP socket files and the PID file removed.
    func shutdown() async {
        guard !isShutDown.exchange(true, ordering: .relaxed) else { return }
        await runOnCommandThread { [commands] in commands.shutDownExports() }
        let listeners = monitorListeners.withLock { $0 }
        for listener in listeners { await listener.close() }
        for channel in stdioChannels.withLock({ $0 }) { try? await channel.close() }
        for future in hub.closeAll() { try? await future.get() }
        for listener in listeners { listener.removeSocketFile() }
        graph.removeAll()
        pidFile.withLock { $0?.remove() }
        await runner.shutdown()
        await ioExecutor.shutdown()
        try? await eventLoops.shutdownGracefully()
        try? await monitorLoop.shutdownGracefully()
    }
}

/// Breaks the construction cycle between the export registry and the commands that react
/// to deleted exports.
private final class ExportDeletionForwarder: Sendable {
    private let box = Mutex<HighWaterCommands?>(nil)
    var target: HighWaterCommands? {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
    func forward(_ export: NBDExport) { target?.exportDeleted(export) }
}

/// Fires a shutdown handler installed later (the service group's), from any thread.
final class ShutdownTrigger: Sendable {
    private let handler = Mutex<(@Sendable () -> Void)?>(nil)

    func install(_ body: @escaping @Sendable () -> Void) {
        handler.withLock { $0 = body }
    }

    func fire() {
        handler.withLock { $0 }?()
    }
}
