/// An export's I/O status, QEMU's `BlockDeviceIoStatus` (`ok`, `failed`, `nospace`) as far
/// as an export has one: writes held for lack of space are `nospace`.
public enum NBDExportIOStatus: String, Sendable {
    case ok
    case noSpace = "nospace"
}
