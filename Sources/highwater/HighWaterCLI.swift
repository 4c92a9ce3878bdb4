import ArgumentParser
import AutoExtend
import HighWaterDaemon
import HighWaterServe
import HighWaterWatch
import ImageTools
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `highwater`: the HighWater storage daemon and its tools.
struct HighWater: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "highwater",
        abstract: "A storage daemon for thin-provisioned virtual disks, compatible with qemu-storage-daemon.",
        subcommands: [Daemon.self, Serve.self, Img.self, AutoExtendCommand.self, Watch.self]
    )
}

/// `highwater daemon ...` takes qemu-storage-daemon's command line verbatim, including its own
/// `-h` and `-V`, so it is dispatched before ArgumentParser sees the arguments (see below).
struct Daemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon with qemu-storage-daemon's command line (--blockdev, --export, --nbd-server, --chardev, --monitor, --pidfile).",
        discussion: "Run `highwater daemon --help` for the options."
    )

    @Argument(parsing: .captureForPassthrough, help: "qemu-storage-daemon options")
    var options: [String] = []

    func run() async throws {
        throw ExitCode(await StorageDaemon.main(arguments: options))
    }
}

/// `highwater serve`: the built-in default for a newcomer.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a 10 GiB thin disk over NBD from ./highwater-data/, on a small volume that a built-in controller grows as it fills.",
        discussion: """
            The disk (disk.qcow2) sits on a file volume of --volume-size; a write threshold fires \
            when less than half a chunk is free, and the built-in controller grows the volume by \
            --chunk. Writes that find the volume full wait instead of failing. QMP: qmp.sock in the folder.
            """
    )

    @Option(help: "Folder for the disk and the sockets.")
    var dir: String = ServeOptions.defaultDirectory

    @Option(help: "Virtual size of the disk created on first run (bytes, or with K, M, G, T suffix).")
    var size: String = "10G"

    @Option(help: "Size of the disk's volume on first run (at least 1M).")
    var volumeSize: String = "256M"

    @Option(help: "Bytes added to the volume per extension (at least 1M).")
    var chunk: String = "256M"

    func validate() throws {
        _ = try options()
    }

    func run() async throws {
        throw ExitCode(await BuiltInServer.main(try options()))
    }

    private func options() throws -> ServeOptions {
        func parse(_ text: String, _ flag: String, atLeastMiB: Bool) throws -> UInt64 {
            guard let value = AutoExtendConfiguration.positiveSize(text), !atLeastMiB || value >= 1 << 20 else {
                throw ValidationError("\(flag): expected \(atLeastMiB ? "a size of at least 1M" : "a positive size") (bytes, or with a K, M, G, T suffix).")
            }
            return value
        }
        return ServeOptions(
            directory: dir, diskSize: try parse(size, "--size", atLeastMiB: false),
            volumeSize: try parse(volumeSize, "--volume-size", atLeastMiB: true), chunk: try parse(chunk, "--chunk", atLeastMiB: true))
    }
}

/// `highwater watch`: follow the events and node use of running daemons.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow daemons' QMP monitors: threshold events and node use, live.",
        discussion: """
            Each SOCKET is a UNIX socket path or HOST:PORT. Prints every event, and each node's \
            size, highest written offset and thresholds whenever they change: they are queried \
            after every event and every --interval seconds. A daemon that goes away is \
            reconnected with backoff. Ctrl-C stops.
            """
    )

    @Flag(help: "Print one JSON object per line.")
    var json = false

    @Option(help: "Seconds between the slow refreshes of the use display; 0 refreshes on events only.")
    var interval: Double = 5

    @Argument(help: ArgumentHelp("QMP monitors: UNIX socket paths or HOST:PORT.", valueName: "socket"))
    var sockets: [String]

    func validate() throws {
        guard interval >= 0, interval.isFinite else { throw ValidationError("--interval must be 0 or more seconds.") }
    }

    func run() async throws {
        let watcher = Watcher(
            targets: sockets.map(WatchTarget.init), json: json,
            refreshInterval: interval > 0 ? .milliseconds(Int64(interval * 1000)) : nil,
            write: FileHandle.standardOutput)
        await watcher.runUntilInterrupted()
    }
}

/// `highwater img`: make and inspect images without QEMU, with qemu-img's options, texts
/// and exit codes.
struct Img: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and inspect raw and qcow2 images (like qemu-img).",
        subcommands: [Create.self, Info.self, Check.self]
    )

    enum OutputFormat: String, ExpressibleByArgument {
        case human, json
    }

    /// Prints a tool error as qemu-img does and exits with its status.
    static func fail(_ error: ImageToolError) -> ExitCode {
        FileHandle.standardError(error.printed)
        return ExitCode(error.exitCode)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an image: create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-u] [-q] FILE [SIZE]."
        )

        @Option(name: .customShort("f"), help: "Image format: raw (default) or qcow2.")
        var format = "raw"

        @Option(name: .customShort("o"), help: "Format options: cluster_size, compat (0.10|1.1), refcount_bits, lazy_refcounts (on|off), compression_type, backing_file, backing_fmt.")
        var options: [String] = []

        @Option(name: .customShort("b"), help: "Backing file (its size is the default size).")
        var backingFile: String?

        @Option(name: .customShort("F"), help: "Format of the backing file.")
        var backingFormat: String?

        @Flag(name: .customShort("u"), help: "Do not open the backing file (a size is then needed).")
        var unsafe = false

        @Flag(name: .customShort("q"), help: "Quiet: no 'Formatting' line.")
        var quiet = false

        @Argument(help: "The image file.")
        var filename: String

        @Argument(help: "Virtual size in bytes, with optional k, M, G, T, P or E suffix.")
        var size: String?

        func run() throws {
            let request = ImageCreateRequest(
                filename: filename, format: format, options: options, backingFile: backingFile,
                backingFormat: backingFormat, size: size, unsafe: unsafe, quiet: quiet)
            do {
                try ImageCreator.create(request) { FileHandle.standardOutput($0) }
            } catch {
                throw Img.fail(error)
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's format, sizes, backing file and format details.")

        @Option(name: .customShort("f"), help: "Image format (probed when not given).")
        var format: String?

        @Option(help: "human or json.")
        var output: OutputFormat = .human

        @Argument(help: "The image file.")
        var filename: String

        func run() throws {
            do {
                let info = try ImageInfo.read(filename: filename, format: format)
                FileHandle.standardOutput(output == .json ? info.json : info.human)
            } catch {
                throw Img.fail(error)
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a qcow2 image's metadata; exit status 0 clean, 2 corruptions, 3 leaks, 1 check failed, 63 no check for the format."
        )

        @Option(name: .customShort("f"), help: "Image format (probed when not given).")
        var format: String?

        @Option(help: "human or json.")
        var output: OutputFormat = .human

        @Flag(name: .customShort("q"), help: "Quiet: print nothing.")
        var quiet = false

        @Argument(help: "The image file.")
        var filename: String

        func run() throws {
            let result: ImageCheckResult
            do {
                result = try ImageCheckResult.check(filename: filename, format: format)
            } catch {
                throw Img.fail(error)
            }
            for message in result.messages { FileHandle.standardError(message + "\n") }
            if !quiet { FileHandle.standardOutput(output == .json ? result.json : result.human) }
            throw ExitCode(result.exitCode)
        }
    }
}

/// Unbuffered writes to the standard streams (stderr and stdout interleave as written).
enum FileHandle {
    static func standardOutput(_ text: String) { write(1, text) }
    static func standardError(_ text: String) { write(2, text) }

    private static func write(_ descriptor: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            done += count
        }
    }
}

@main
enum Main {
    /// `highwater daemon ...` bypasses ArgumentParser: its arguments are qemu-storage-daemon's,
    /// `-h` and `-V` included.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "daemon" {
            let daemonArguments = Array(arguments.dropFirst())
            // Before anything starts a thread.
            let daemonizer = Daemonizer.startIfRequested(arguments: daemonArguments)
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            exit(await StorageDaemon.main(arguments: daemonArguments, daemonizer: daemonizer))
        }
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        await HighWater.main()
    }
}
