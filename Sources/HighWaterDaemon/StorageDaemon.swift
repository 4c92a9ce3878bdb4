import BlockCore
import CMalloc
import JSON
import Logging
import NBDServer
import NIOCore
import NIOPosix
import QAPI
import QMP
import QMPCommands
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `highwater daemon`: qemu-storage-daemon's command line, processed the way it does —
/// strictly left to right, each option executed at once, the first error fatal (one line on
/// stderr, exit status 1) — then serving until `quit` or SIGINT/SIGTERM/SIGHUP (exit 0).
public enum StorageDaemon {
    /// The name error lines start with, as QEMU uses its program name.
    static let programName = "highwater"

    /// Runs the daemon; returns the process exit status.
    /// - Parameter onReady: called on the command thread once startup is complete, with the
    ///   command executor (the built-in server prints its welcome and starts its controller there).
    /// - Parameter daemonizer: the forked child's link to its waiting parent (`--daemonize`).
    /// - Parameter companions: services that run next to the daemon in its service group
    ///   (the built-in server's volume controller): started with it, shut down before it on
    ///   a signal or `quit`; one that ends, or fails, shuts the whole group down (a failure
    ///   is reported like a startup error).
    public static func main(
        arguments: [String], logLevel: Logger.Level = .notice, daemonizer: Daemonizer? = nil,
        companions: [any Service] = [], onReady: (@Sendable (HighWaterCommands) -> Void)? = nil
    ) async -> Int32 {
        let options: [QSDOption]
        do {
            options = try QSDCommandLine.parse(arguments)
        } catch {
            printError("\(programName): \(error)")
            return 1
        }
        if options.contains(where: { $0.kind == .help }) {
            print(helpText)
            return 0
        }
        if options.contains(where: { $0.kind == .version }) {
            print("highwater daemon version 0.1 (qemu-storage-daemon 7.2 command line)")
            return 0
        }

        keepIOBuffersInTheHeap()
        var logger = Logger(label: "highwater")
        logger.logLevel = logLevel
        let runtime = DaemonRuntime(logger: logger)
        // The service group handles the signals from before startup on: a SIGTERM that
        // arrives while options are processed shuts the daemon down once they are.
        let daemon = DaemonService(runtime: runtime, options: options, daemonizer: daemonizer, onReady: onReady)
        // The group shuts its services down in reverse order: companions before the daemon.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: daemon)] + companions.map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint, .sighup],
            logger: logger))
        runtime.quitTrigger.install { Task { await group.triggerGracefulShutdown() } }
        do {
            try await group.run()
            return 0
        } catch let error as DaemonStartupError {
            printError("\(programName): \(error.description)", hint: error.hint)
            return 1
        } catch {
            printError("\(programName): \(error)")
            return 1
        }
    }

    /// Request buffers (a 64 KiB read's reply is a 128 KiB allocation, 1 MiB ones 2 MiB) come
    /// and go at the request rate. glibc serves blocks from 128 KiB up with a fresh mmap and
    /// gives them back to the kernel on free (or trims the heap's top), so every request paid
    /// for page faults on fresh memory, more or less of them from run to run as glibc's
    /// moving threshold settled: at 64 KiB sequential reads, 0.5 to 12 faults and 44 to 89 µs
    /// of CPU per request. Blocks up to the largest request stay in the heap, and the heap
    /// keeps a working set's worth of free memory.
    static func keepIOBuffersInTheHeap() {
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
    }

    /// One error line on stderr, and QEMU's unprefixed hint line if there is one; whatever
    /// stdout still buffers goes out first, so the two streams keep their order.
    public static func printError(_ line: String, hint: String? = nil) {
        fflush(nil)
        var text = line + "\n"
        if let hint { text += hint + "\n" }
        _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }

    /// A warning about an option, as QEMU prints it: `<program>: <option>: warning: <message>`.
    static func printWarning(at location: String, _ message: String, hint: String? = nil) {
        printError("\(programName): \(location): warning: \(message)", hint: hint)
    }

    static let helpText = """
        Usage: highwater daemon [options]
        HighWater storage daemon, with qemu-storage-daemon's command line

          -h, --help                display this help and exit
          -V, --version             output version information and exit

          --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]
                     [,cache.direct=on|off][,cache.no-flush=on|off]
                     [,read-only=on|off][,<driver options>]
                                    configure a block backend node (drivers: file,
                                    host_device, raw, null-co, null-aio); or JSON
          --chardev socket,id=<id>,path=<path>[,server=on,wait=off]
          --chardev socket,id=<id>,host=<host>,port=<port>[,server=on,wait=off]
          --chardev stdio,id=<id>   configure a character device for a monitor
          --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]
                   [,writable=on|off][,description=<text>]
                                    export the specified block node over NBD
          --monitor [chardev=]name[,mode=control][,pretty[=on|off]]
                                    configure a QMP monitor
          --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>
                       [,max-connections=<n>]
          --nbd-server addr.type=unix,addr.path=<path>[,max-connections=<n>]
                                    start an NBD server for exporting block nodes
          --object iothread,id=<id> accepted for compatibility (I/O runs on a thread pool)
          --pidfile <path>          write process ID to a file after startup
        """
}

/// The one long-running service: starts the daemon from its options, serves until graceful
/// shutdown (a signal or `quit`), then tears it down in QEMU's order. A startup error ends
/// the group with that error.
struct DaemonService: Service {
    let runtime: DaemonRuntime
    let options: [QSDOption]
    let daemonizer: Daemonizer?
    let onReady: (@Sendable (HighWaterCommands) -> Void)?

    func run() async throws {
        do {
            try await runtime.runOnCommandThread { [runtime, options] in try runtime.process(options) }
        } catch {
            await runtime.shutdown()
            throw error
        }
        if let onReady {
            await runtime.runOnCommandThread { [runtime] in onReady(runtime.commands) }
        }
        daemonizer?.startupCompleted()
        try? await gracefulShutdown()
        await runtime.shutdown()
    }
}
