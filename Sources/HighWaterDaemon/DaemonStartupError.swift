/// A failure while processing the command line (or while `serve` prepares its disk); printed
/// as one line on stderr (plus QEMU's hint line, if any), exit status 1.
public struct DaemonStartupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// A second line QEMU prints without prefix (the rules a value must follow).
    public let hint: String?

    public init(_ description: String, hint: String? = nil) {
        self.description = description
        self.hint = hint
    }
}
