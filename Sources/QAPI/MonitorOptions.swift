/// `--monitor [chardev=]ID[,mode=control][,pretty=on|off][,id=ID]` (QAPI `MonitorOptions`).
///
/// Decode with implied key `chardev`. The storage daemon serves only QMP: after finding the
/// chardev, reject ``Mode/readline`` with ``MonitorOptions/onlyQMPSupported``.
public struct MonitorOptions: QAPIStruct, Sendable, Equatable {
    /// QAPI `MonitorMode`.
    public enum Mode: String, QAPIEnum, Sendable {
        case readline, control
    }

    public var id: String?
    /// `control` when not given (the storage daemon has no human monitor).
    public var mode: Mode
    /// Indent QMP output.
    public var pretty: Bool
    public var chardev: String

    /// The error for `mode=readline`, reported after the chardev lookup.
    public static let onlyQMPSupported = QAPIError("Only QMP is supported")

    public init(chardev: String, id: String? = nil, mode: Mode = .control, pretty: Bool = false) {
        self.chardev = chardev
        self.id = id
        self.mode = mode
        self.pretty = pretty
    }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        id = try members.optional("id")
        mode = try members.optional("mode", default: .control)
        pretty = try members.optional("pretty", default: false)
        chardev = try members.required("chardev")
    }
}
