import ImageTools
import Logging
import QMP
import QMPCommands

#if canImport(Glibc)
import Glibc
#endif

/// `highwater serve`: a ready-made daemon for a first look. It keeps a thin qcow2 disk in a
/// folder, exports it over NBD, opens a QMP socket, arms a write threshold on the qcow2's file
/// node — the thin-provisioning case: it fires when the image file grows past it — and says
/// how to connect.
public enum BuiltInServer {
    public static let diskNodeName = "disk0"
    public static let fileNodeName = "disk0-file"
    /// Where the threshold sits in the image file.
    static let threshold: UInt64 = 64 << 20

    public static func main(directory: String, diskSize: UInt64) async -> Int32 {
        let folder = absolutePath(directory)
        let disk = folder + "/disk.qcow2"
        let nbdSocket = folder + "/nbd.sock"
        let qmpSocket = folder + "/qmp.sock"
        do {
            try prepare(folder: folder, disk: disk, size: diskSize)
        } catch {
            StorageDaemon.printError("highwater: \(error)")
            return 1
        }
        let arguments = [
            "--blockdev", "driver=file,node-name=\(fileNodeName),filename=\(escapeKeyval(disk)),discard=unmap",
            "--blockdev", "driver=qcow2,node-name=\(diskNodeName),file=\(fileNodeName),discard=unmap",
            "--nbd-server", "addr.type=unix,addr.path=\(escapeKeyval(nbdSocket))",
            "--export", "type=nbd,id=export0,node-name=\(diskNodeName),name=\(diskNodeName),writable=on",
            "--chardev", "socket,id=qmp0,path=\(escapeKeyval(qmpSocket)),server=on,wait=off",
            "--monitor", "chardev=qmp0",
        ]
        let uri = "nbd+unix:///\(diskNodeName)?socket=\(nbdSocket)"
        return await StorageDaemon.main(arguments: arguments, logLevel: .info) { commands in
            _ = commands.execute(QMPRequest(
                command: "block-set-write-threshold",
                arguments: ["node-name": .string(fileNodeName), "write-threshold": .unsigned(threshold)],
                id: nil))
            print("""
                HighWater is serving a \(diskSize >> 20) MiB thin qcow2 disk (\(disk)).

                  NBD export '\(diskNodeName)':  \(uri)
                    nbdinfo '\(uri)'
                    qemu-io -f raw -c 'write -P 0xab 0 100M' '\(uri)'
                  QMP monitor:  \(qmpSocket)
                    qmp-shell \(qmpSocket)    (pip install qemu.qmp), or: socat - UNIX-CONNECT:\(qmpSocket)

                A write threshold is armed on the image file (node '\(fileNodeName)') at \(threshold >> 20) MiB: once
                the guest's writes make the file grow past it (the qemu-io line above does),
                BLOCK_WRITE_THRESHOLD is logged here and sent to QMP clients.
                Ctrl-C stops the daemon.
                """)
            fflush(nil)
        }
    }

    private static func prepare(folder: String, disk: String, size: UInt64) throws {
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw DaemonStartupError("cannot create \(folder): \(String(cString: strerror(errno)))")
        }
        if access(disk, F_OK) == 0 { return }
        do {
            try ImageCreator.create(
                ImageCreateRequest(filename: disk, format: "qcow2", size: String(size), quiet: true), print: { _ in })
        } catch {
            throw DaemonStartupError(error.message)
        }
    }

    private static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    /// Keyval values double their commas.
    private static func escapeKeyval(_ value: String) -> String {
        value.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
    }
}
