/// How a volume is grown.
public enum BackendConfiguration: Sendable, Equatable {
    /// A loop device (the node's device when nil): grow its backing file, then `losetup -c`.
    case loop(device: String?)
    /// A regular file (the node's file when nil): `ftruncate`.
    case file(path: String?)
    /// An LVM logical volume (the node's device when nil): `lvextend`.
    case lvm(logicalVolume: String?, program: [String])
    /// Any command, run with `/bin/sh -c` (see `CommandBackend` for its environment).
    case command(String)

    public static let names = ["loop", "file", "lvm", "command"]
}
