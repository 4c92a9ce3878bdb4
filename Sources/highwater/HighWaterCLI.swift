import ArgumentParser
import HighWaterDaemon
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `highwater`: the HighWater storage daemon and its tools.
struct HighWater: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "highwater",
        abstract: "A storage daemon for thin-provisioned virtual disks, compatible with qemu-storage-daemon.",
        subcommands: [Daemon.self, Serve.self]
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
        abstract: "Create ./highwater-data/ with a 10 GiB thin disk, export it over NBD, open QMP, arm a write threshold."
    )

    @Option(help: "Folder for the disk and the sockets.")
    var dir: String = "highwater-data"

    @Option(help: "Virtual size of the disk created on first run, in bytes.")
    var size: UInt64 = 10 << 30

    func run() async throws {
        throw ExitCode(await BuiltInServer.main(directory: dir, diskSize: size))
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
