import HighWaterDaemon
import ImageTools
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `highwater serve`: the whole thin-provisioning loop in one process, for a first look.
///
/// It keeps a thin qcow2 disk in a folder, on a small file volume (a regular file opened
/// with `__io.highwater_volume=on`: its length is its capacity), exports it over NBD with
/// writes held while the volume is full, opens a QMP socket for the user, and runs the
/// AutoExtend controller on a private monitor: it arms a write threshold on the volume and
/// grows the file by a chunk each time it fires. One service group runs the daemon and the
/// controller; a signal (Ctrl-C) or `quit` stops the controller, then the daemon.
public enum BuiltInServer {
    /// Runs until a signal or `quit`; returns the process exit status.
    public static func main(_ options: ServeOptions) async -> Int32 {
        let layout = ServeLayout(folder: absolutePath(options.directory))
        let volumeSize: UInt64
        let virtualSize: UInt64
        do {
            (volumeSize, virtualSize) = try prepare(layout, options)
        } catch {
            StorageDaemon.printError("highwater: \(error.description)")
            return 1
        }
        var logger = Logger(label: "highwater.autoextend")
        logger.logLevel = .info
        let (daemonReady, readiness) = AsyncStream.makeStream(of: Void.self)
        let controller = VolumeControllerService(
            configuration: layout.controllerConfiguration(options), daemonReady: daemonReady, logger: logger)
        let welcome = ServeWelcome.text(layout: layout, options: options, virtualSize: virtualSize, volumeSize: volumeSize)
        return await StorageDaemon.main(arguments: layout.daemonArguments, logLevel: .info, companions: [controller]) { _ in
            print(welcome)
            fflush(nil)
            readiness.yield()
            readiness.finish()
        }
    }

    /// Creates the folder and the disk, or adopts an earlier run's disk; returns the
    /// volume's size and the disk's virtual size.
    private static func prepare(_ layout: ServeLayout, _ options: ServeOptions) throws(DaemonStartupError) -> (volume: UInt64, virtual: UInt64) {
        if mkdir(layout.folder, 0o755) != 0 && errno != EEXIST {
            throw DaemonStartupError("cannot create \(layout.folder): \(String(cString: strerror(errno)))")
        }
        let plan = VolumePreparation.plan(existingLength: try length(of: layout.disk), volumeSize: options.volumeSize)
        if case .create = plan {
            do {
                try ImageCreator.create(
                    ImageCreateRequest(filename: layout.disk, format: "qcow2", size: String(options.diskSize), quiet: true),
                    print: { _ in })
            } catch {
                throw DaemonStartupError(error.message)
            }
        }
        let image: ImageInfo
        do {
            image = try ImageInfo.read(filename: layout.disk, format: nil)
        } catch {
            throw DaemonStartupError(error.message)
        }
        guard image.format == "qcow2" else { throw DaemonStartupError("\(layout.disk) is a \(image.format) image, not qcow2") }
        // Never shorter than the file is (a huge disk's fresh metadata may exceed a small volume).
        let length = try length(of: layout.disk) ?? 0
        if plan.volumeSize > length {
            guard truncate(layout.disk, off_t(plan.volumeSize)) == 0 else {
                throw DaemonStartupError("cannot lengthen \(layout.disk) to \(plan.volumeSize) bytes: \(String(cString: strerror(errno)))")
            }
        }
        if let message = plan.message(disk: layout.disk) {
            print(message)
            fflush(nil)
        }
        return (max(plan.volumeSize, length), image.virtualSize)
    }

    /// The length of the regular file at `path`, nil if there is none.
    private static func length(of path: String) throws(DaemonStartupError) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw DaemonStartupError("cannot look at \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw DaemonStartupError("\(path) is not a regular file") }
        return UInt64(info.st_size)
    }

    private static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }
}
