/// A transmission command type (`NBD_CMD_*`). Unknown types are representable: the server
/// answers them with `EINVAL`.
public struct NBDCommand: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let read = NBDCommand(rawValue: 0)
    public static let write = NBDCommand(rawValue: 1)
    public static let disconnect = NBDCommand(rawValue: 2)
    public static let flush = NBDCommand(rawValue: 3)
    public static let trim = NBDCommand(rawValue: 4)
    public static let cache = NBDCommand(rawValue: 5)
    public static let writeZeroes = NBDCommand(rawValue: 6)
    public static let blockStatus = NBDCommand(rawValue: 7)

    /// The name QEMU uses in error messages ("write zeroes").
    public var description: String {
        switch rawValue {
        case 0: "read"
        case 1: "write"
        case 2: "disconnect"
        case 3: "flush"
        case 4: "trim"
        case 5: "cache"
        case 6: "write zeroes"
        case 7: "block status"
        default: "<unknown>"
        }
    }
}

/// Flags of a transmission request (`NBD_CMD_FLAG_*`).
public struct NBDCommandFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let fua = NBDCommandFlags(rawValue: 1 << 0)
    public static let noHole = NBDCommandFlags(rawValue: 1 << 1)
    public static let dontFragment = NBDCommandFlags(rawValue: 1 << 2)
    public static let requestOne = NBDCommandFlags(rawValue: 1 << 3)
    public static let fastZero = NBDCommandFlags(rawValue: 1 << 4)
}
