/// A failure of an image command, reported as qemu-img reports it: `qemu-img: <message>`
/// on standard error, then the exit status.
public struct ImageToolError: Error, Equatable, Sendable {
    /// The text after the program name; continuation lines are included as qemu-img prints
    /// them (some repeat the program name, some do not).
    public var message: String
    public var exitCode: Int32
    /// qemu-img ends a few messages without a newline ("Detected format of qcow2.").
    public var endsWithNewline: Bool

    public init(_ message: String, exitCode: Int32 = 1, endsWithNewline: Bool = true) {
        self.message = message
        self.exitCode = exitCode
        self.endsWithNewline = endsWithNewline
    }

    /// The name qemu-img prefixes its messages with; `highwater img` prints the same texts so
    /// that scripts written for qemu-img keep working.
    public static let programName = "qemu-img"

    /// The message as printed: `qemu-img: ...` and (mostly) a final newline.
    public var printed: String { "\(Self.programName): \(message)" + (endsWithNewline ? "\n" : "") }
}
