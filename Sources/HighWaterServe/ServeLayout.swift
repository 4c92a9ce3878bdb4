import AutoExtend
import QMPClient

/// The files of a `highwater serve` folder, and the daemon and controller set up on them.
///
/// The controller has a monitor of its own (`autoextend.sock`): a monitor serves one client
/// at a time, and `qmp.sock` stays free for the user.
public struct ServeLayout: Sendable, Equatable {
    /// The folder, as an absolute path.
    public let folder: String
    public var disk: String { folder + "/disk.qcow2" }
    public var nbdSocket: String { folder + "/nbd.sock" }
    public var qmpSocket: String { folder + "/qmp.sock" }
    public var controllerSocket: String { folder + "/autoextend.sock" }

    /// The qcow2 node, exported under its name.
    public static let diskNodeName = "disk0"
    /// The volume under it: a `file` node with `__io.highwater_volume=on`, whose write
    /// threshold the controller arms.
    public static let volumeNodeName = "disk0-file"

    /// - Parameter folder: an absolute path.
    public init(folder: String) {
        self.folder = folder
    }

    /// The export's NBD URI.
    public var exportURI: String { "nbd+unix:///\(Self.diskNodeName)?socket=\(nbdSocket)" }

    /// The daemon's command line (qemu-storage-daemon's syntax): the qcow2 on its file
    /// volume, the NBD export holding writes that find the volume full, the user's monitor
    /// and the controller's.
    public var daemonArguments: [String] {
        [
            "--blockdev",
            "driver=file,node-name=\(Self.volumeNodeName),filename=\(Self.keyval(disk)),discard=unmap,__io.highwater_volume=on",
            "--blockdev", "driver=qcow2,node-name=\(Self.diskNodeName),file=\(Self.volumeNodeName),discard=unmap",
            "--nbd-server", "addr.type=unix,addr.path=\(Self.keyval(nbdSocket))",
            "--export",
            "type=nbd,id=export0,node-name=\(Self.diskNodeName),name=\(Self.diskNodeName),writable=on,__io.highwater_on-enospc=hold",
            "--chardev", "socket,id=qmp0,path=\(Self.keyval(qmpSocket)),server=on,wait=off",
            "--monitor", "chardev=qmp0",
            "--chardev", "socket,id=autoextend0,path=\(Self.keyval(controllerSocket)),server=on,wait=off",
            "--monitor", "chardev=autoextend0",
        ]
    }

    /// The controller's configuration: the volume node, grown as a file, on the
    /// controller's monitor. The maximum is left to the controller (1.1 × the disk's
    /// virtual size, read from the daemon).
    public func controllerConfiguration(_ options: ServeOptions) -> AutoExtendConfiguration {
        let volume = VolumeConfiguration(
            nodeName: Self.volumeNodeName, backend: .file(path: nil), chunk: options.chunk,
            utilizationPercent: options.utilizationPercent)
        return AutoExtendConfiguration(daemons: [DaemonConfiguration(address: .unix(path: controllerSocket), volumes: [volume])])
    }

    /// Keyval values double their commas.
    static func keyval(_ value: String) -> String {
        value.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
    }
}
