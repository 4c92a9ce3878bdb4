import NIOCore

/// Writers for the fixed-layout parts of the protocol. The server's hot path uses the header
/// writers directly so that read data can be placed right after them in the same buffer.
extension ByteBuffer {
    /// Server greeting: NBDMAGIC, IHAVEOPT, handshake flags.
    @discardableResult
    public mutating func writeNBDGreeting(flags: NBDHandshakeFlags) -> Int {
        writeMultipleIntegers(NBDMagic.greeting, NBDMagic.option, flags.rawValue)
    }

    @discardableResult
    public mutating func writeNBDClientFlags(_ flags: NBDClientFlags) -> Int {
        writeInteger(flags.rawValue)
    }

    /// An option request: IHAVEOPT, option, length, data.
    @discardableResult
    public mutating func writeNBDOption(_ option: NBDOption, data: ByteBuffer? = nil) -> Int {
        var written = writeMultipleIntegers(NBDMagic.option, option.rawValue, UInt32(data?.readableBytes ?? 0))
        if let data { written += writeImmutableBuffer(data) }
        return written
    }

    /// The answer to `NBD_OPT_EXPORT_NAME`: size, flags, and 124 zero bytes unless both
    /// sides agreed on NO_ZEROES.
    @discardableResult
    public mutating func writeNBDExportNameReply(size: UInt64, flags: NBDTransmissionFlags, noZeroes: Bool) -> Int {
        var written = writeMultipleIntegers(size, flags.rawValue)
        if !noZeroes { written += writeRepeatingByte(0, count: 124) }
        return written
    }

    /// The 16-byte simple reply header (a successful READ's data follows it).
    @discardableResult @inlinable
    public mutating func writeNBDSimpleReplyHeader(error: NBDErrno?, cookie: UInt64) -> Int {
        writeMultipleIntegers(NBDMagic.simpleReply, error?.rawValue ?? 0, cookie)
    }

    /// The 20-byte structured reply chunk header.
    @discardableResult @inlinable
    public mutating func writeNBDChunkHeader(flags: NBDReplyChunkFlags, type: NBDReplyChunkType, cookie: UInt64, length: UInt32) -> Int {
        writeMultipleIntegers(NBDMagic.structuredReply, flags.rawValue, type.rawValue, cookie, length)
    }
}
