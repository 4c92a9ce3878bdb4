/// A warning QEMU prints while accepting input (e.g. a deprecated spelling).
///
/// On the command line it is printed as `<program>: <location>: warning: <message>`, followed
/// by `hint` (if any) on its own line without prefix.
public struct QAPIWarning: Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    public var description: String { message }
}
