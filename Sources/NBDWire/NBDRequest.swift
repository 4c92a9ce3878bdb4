import NIOCore

/// The 28-byte header of a transmission request. A WRITE's payload (`length` bytes) follows
/// it on the wire; the decoders hand it over separately.
public struct NBDRequest: Sendable, Hashable {
    public var flags: NBDCommandFlags
    public var command: NBDCommand
    /// Opaque value ("handle") the reply echoes.
    public var cookie: UInt64
    public var offset: UInt64
    public var length: UInt32

    public init(flags: NBDCommandFlags = [], command: NBDCommand, cookie: UInt64, offset: UInt64 = 0, length: UInt32 = 0) {
        self.flags = flags
        self.command = command
        self.cookie = cookie
        self.offset = offset
        self.length = length
    }

    /// Writes the header (not the payload).
    @discardableResult
    public func encode(into buffer: inout ByteBuffer) -> Int {
        buffer.writeMultipleIntegers(NBDMagic.request, flags.rawValue, command.rawValue, cookie, offset, length)
    }
}
