import NIOCore

/// Why the data of an option request could not be read; `message` is the text QEMU 7.2
/// sends with `NBD_REP_ERR_INVALID`.
public struct NBDOptionPayloadError: Error, Sendable, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Reads the data of one option request field by field, with QEMU's checks and messages
/// ("Inconsistent lengths in option go", "Invalid name length: 5000", ...).
public struct NBDOptionPayloadReader {
    public let option: NBDOption
    private var data: ByteBuffer

    public init(option: NBDOption, data: ByteBuffer) {
        self.option = option
        self.data = data
    }

    public var remainingBytes: Int { data.readableBytes }

    public mutating func readUInt16() throws(NBDOptionPayloadError) -> UInt16 {
        guard let value = data.readInteger(as: UInt16.self) else { throw inconsistentLengths }
        return value
    }

    public mutating func readUInt32() throws(NBDOptionPayloadError) -> UInt32 {
        guard let value = data.readInteger(as: UInt32.self) else { throw inconsistentLengths }
        return value
    }

    /// Reads `length` bytes as a string that must not contain NUL.
    public mutating func readString(length: Int) throws(NBDOptionPayloadError) -> String {
        guard let view = data.readSlice(length: length) else { throw inconsistentLengths }
        if view.readableBytesView.contains(0) {
            throw NBDOptionPayloadError("Unexpected embedded NUL in option \(option)")
        }
        return String(buffer: view)
    }

    /// Reads a u32 length followed by that many bytes of name (at most 4096).
    public mutating func readName() throws(NBDOptionPayloadError) -> String {
        let length = try readUInt32()
        guard length <= NBDLimits.maximumStringLength else {
            throw NBDOptionPayloadError("Invalid name length: \(length)")
        }
        return try readString(length: Int(length))
    }

    public mutating func skip(_ length: Int) throws(NBDOptionPayloadError) {
        guard data.readableBytes >= length else { throw inconsistentLengths }
        data.moveReaderIndex(forwardBy: length)
    }

    /// Fails when data is left over after the last field.
    public func finish() throws(NBDOptionPayloadError) {
        if data.readableBytes > 0 { throw Self.unexpectedLength(option) }
    }

    /// The error for data where none (or less) was expected.
    public static func unexpectedLength(_ option: NBDOption) -> NBDOptionPayloadError {
        NBDOptionPayloadError("option '\(option)' has unexpected length")
    }

    private var inconsistentLengths: NBDOptionPayloadError {
        NBDOptionPayloadError("Inconsistent lengths in option \(option)")
    }
}
