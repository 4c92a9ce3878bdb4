/// How `JSONValue` is written out. Output is always pure ASCII in QEMU's style:
/// `{"key": value, ...}`, `[a, b]`, non-ASCII as upper-case `\uXXXX` (surrogate pairs beyond
/// the BMP), doubles as C's `%.17g`.
public struct JSONFormat: Sendable, Hashable {
    public enum KeyOrder: Sendable, Hashable {
        /// Members in the order the object holds them.
        case insertion
        /// Members in the order QEMU's QDict iterates them, which is how QSD prints every
        /// object (see `QEMUHashOrder.qdictOrder`).
        case qemu
    }

    /// QEMU's `pretty=on` layout: one member or element per line, four spaces per level,
    /// and empty containers still broken over two lines (`{` newline `}`).
    public var pretty: Bool
    public var keyOrder: KeyOrder
    /// Line break used by the pretty layout; a QMP monitor turns every `\n` into `\r\n`.
    public var lineBreak: [UInt8]

    public init(pretty: Bool = false, keyOrder: KeyOrder = .insertion, lineBreak: [UInt8] = [0x0A]) {
        self.pretty = pretty
        self.keyOrder = keyOrder
        self.lineBreak = lineBreak
    }

    /// Exactly what a QSD monitor prints (without the message's final CRLF).
    public static func qmp(pretty: Bool) -> JSONFormat {
        JSONFormat(pretty: pretty, keyOrder: .qemu, lineBreak: [0x0D, 0x0A])
    }
}
