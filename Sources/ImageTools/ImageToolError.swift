/// A failure of an image command, reported as qemu-img reports it: `qemu-img: <message>`
/// on standard error, then the exit status.
public struct ImageToolError: Error, Equatable, Sendable {
    /// The text after the program name; continuation lines are included as qemu-img prints
    /// them (some repeat the program name, some do not).
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    /// The name qemu-img prefixes its messages with; `highwater img` prints the same texts so
    /// that scripts written for qemu-img keep working.
    public static let programName = "qemu-img"

    /// The message as printed: `qemu-img: ...` and a final newline.
    public var printed: String { "\(Self.programName): \(message)\n" }
}
