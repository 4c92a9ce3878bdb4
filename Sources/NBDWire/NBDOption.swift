/// An option code of the negotiation phase (`NBD_OPT_*`). Unknown codes are representable:
/// the server must answer them with `ERR_UNSUP`.
public struct NBDOption: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let exportName = NBDOption(rawValue: 1)
    public static let abort = NBDOption(rawValue: 2)
    public static let list = NBDOption(rawValue: 3)
    public static let peekExport = NBDOption(rawValue: 4)
    public static let startTLS = NBDOption(rawValue: 5)
    public static let info = NBDOption(rawValue: 6)
    public static let go = NBDOption(rawValue: 7)
    public static let structuredReply = NBDOption(rawValue: 8)
    public static let listMetaContext = NBDOption(rawValue: 9)
    public static let setMetaContext = NBDOption(rawValue: 10)
    public static let extendedHeaders = NBDOption(rawValue: 11)

    /// The name QEMU 7.2 uses in its error messages ("set meta context"); options it does not
    /// know (extended headers included) are "<unknown>".
    public var description: String {
        switch rawValue {
        case 1: "export name"
        case 2: "abort"
        case 3: "list"
        case 4: "peek export"
        case 5: "starttls"
        case 6: "info"
        case 7: "go"
        case 8: "structured reply"
        case 9: "list meta context"
        case 10: "set meta context"
        default: "<unknown>"
        }
    }
}
