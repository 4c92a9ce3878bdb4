/// An error value of a transmission reply. The protocol defines its own numbers (they
/// happen to match Linux); host errors are mapped onto the few the protocol allows.
public struct NBDErrno: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let permissionDenied = NBDErrno(rawValue: 1)       // EPERM
    public static let ioError = NBDErrno(rawValue: 5)                // EIO
    public static let outOfMemory = NBDErrno(rawValue: 12)           // ENOMEM
    public static let invalid = NBDErrno(rawValue: 22)               // EINVAL
    public static let noSpace = NBDErrno(rawValue: 28)               // ENOSPC
    public static let overflow = NBDErrno(rawValue: 75)              // EOVERFLOW
    public static let notSupported = NBDErrno(rawValue: 95)          // ENOTSUP
    public static let shutdown = NBDErrno(rawValue: 108)             // ESHUTDOWN

    /// Maps a Linux errno to the protocol value: EROFS → EPERM, EDQUOT/EFBIG → ENOSPC,
    /// EOPNOTSUPP → ENOTSUP, anything the protocol lacks → EINVAL.
    public init(systemErrno errno: Int32) {
        switch errno {
        case 1, 30: self = .permissionDenied            // EPERM, EROFS
        case 5: self = .ioError
        case 12: self = .outOfMemory
        case 27, 28, 122: self = .noSpace               // EFBIG, ENOSPC, EDQUOT
        case 75: self = .overflow
        case 95: self = .notSupported                   // ENOTSUP == EOPNOTSUPP on Linux
        case 108: self = .shutdown
        default: self = .invalid
        }
    }
}
