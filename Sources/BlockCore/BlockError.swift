/// Errors of the block layer. Each edge converts them once: to an errno on NBD
/// (`errno`), to a QMP `GenericError` description (`description`).
public enum BlockError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A request outside the node; `size` is the node size when it was checked.
    case outOfRange(offset: UInt64, length: UInt64, size: UInt64)
    /// Write-type request on a read-only node or export.
    case readOnly
    /// The storage is full or fixed-size and the write ends past it.
    case noSpace
    /// The operation is not supported by the driver (or FAST_ZERO could not be honoured).
    case notSupported(String)
    /// Bad arguments to an operation (resize to a bad size, ...), with QEMU's text.
    case invalidArgument(String)
    /// A system call failed.
    case system(errno: Int32, operation: String)
    /// Another user (in this process or, through image locks, another one) does not share
    /// a needed permission; QEMU's text.
    case permissionConflict(String)

    /// The errno an NBD reply carries for this error.
    public var errno: Int32 {
        switch self {
        case .outOfRange: 22       // EINVAL
        case .readOnly: 1          // EPERM
        case .noSpace: 28          // ENOSPC
        case .notSupported: 95     // ENOTSUP
        case .invalidArgument: 22  // EINVAL
        case .system(let errno, _): errno
        case .permissionConflict: 1   // EPERM
        }
    }

    public var description: String {
        switch self {
        case .outOfRange(let offset, let length, let size):
            "operation past EOF; From: \(offset), Len: \(length), Size: \(size)"
        case .readOnly: "Export is read-only"
        case .noSpace: "No space left on device"
        case .notSupported(let what): what
        case .invalidArgument(let text): text
        case .system(let errno, let operation): "\(operation): \(BlockError.strerror(errno))"
        case .permissionConflict(let text): text
        }
    }

    /// The C library's text for `errno` ("No such file or directory").
    public static func strerror(_ errno: Int32) -> String {
        String(cString: _strerror(errno))
    }
}

#if canImport(Glibc)
import Glibc
private func _strerror(_ e: Int32) -> UnsafeMutablePointer<CChar> { Glibc.strerror(e) }
#elseif canImport(Darwin)
import Darwin
private func _strerror(_ e: Int32) -> UnsafeMutablePointer<CChar> { Darwin.strerror(e) }
#endif
