import NIOCore

/// What a client sends, as the server decodes it.
public enum NBDClientMessage: Sendable, Hashable {
    /// The client's answer to the greeting (raw: unknown bits must make the server drop it).
    case clientFlags(NBDClientFlags)
    /// An option request with its (unparsed) data.
    case option(NBDOption, data: ByteBuffer)
    /// A transmission request; `payload` is the WRITE data (nil for other commands).
    case request(NBDRequest, payload: ByteBuffer?)
}

/// Decodes the byte stream a client sends. Feed bytes with `append(_:)` and pull messages
/// with `next()` until it returns nil. The phase is the server's to switch: after answering
/// `GO`/`EXPORT_NAME` it sets `phase = .transmission` before pulling the next message.
public struct NBDServerDecoder {
    public enum Phase: Sendable, Hashable {
        case clientFlags
        case options
        case transmission
    }

    public var phase: Phase
    /// Option data above this is a protocol violation (QEMU allows 32 MiB).
    public let maximumOptionLength: Int
    /// WRITE payloads above this drop the connection.
    public let maximumWritePayload: Int
    private var bytes = NBDByteAccumulator()

    public init(phase: Phase = .clientFlags, maximumOptionLength: Int = NBDLimits.maximumPayload,
                maximumWritePayload: Int = NBDLimits.maximumPayload) {
        self.phase = phase
        self.maximumOptionLength = maximumOptionLength
        self.maximumWritePayload = maximumWritePayload
    }

    /// Bytes received and not yet decoded.
    public var bufferedBytes: Int { bytes.readableBytes }

    /// Whether the decoder still references received storage (for tests).
    var holdsReceivedStorage: Bool { bytes.buffer != nil }

    public mutating func append(_ buffer: ByteBuffer) {
        bytes.append(buffer)
    }

    public mutating func next() throws(NBDProtocolError) -> NBDClientMessage? {
        // After a large WRITE, an idle connection would otherwise keep the payload's storage
        // (a MiB or more each) until its next request.
        defer { bytes.releaseIfConsumed() }
        switch phase {
        case .clientFlags:
            guard let flags = bytes.readInteger(as: UInt32.self) else { return nil }
            return .clientFlags(NBDClientFlags(rawValue: flags))
        case .options:
            guard let magic = bytes.peekInteger(as: UInt64.self) else { return nil }
            guard magic == NBDMagic.option else { throw .badOptionMagic(magic) }
            guard let length = bytes.peekInteger(at: 12, as: UInt32.self) else { return nil }
            guard length <= maximumOptionLength else { throw .optionTooLong(length) }
            guard bytes.readableBytes >= NBDLimits.optionHeaderLength + Int(length) else {
                bytes.reserve(totalReadable: NBDLimits.optionHeaderLength + Int(length))
                return nil
            }
            bytes.skip(8)
            let option = NBDOption(rawValue: bytes.readInteger(as: UInt32.self)!)
            bytes.skip(4)
            return .option(option, data: bytes.readSlice(length: Int(length))!)
        case .transmission:
            return try nextRequest()
        }
    }

    private mutating func nextRequest() throws(NBDProtocolError) -> NBDClientMessage? {
        guard let magic = bytes.peekInteger(as: UInt32.self) else { return nil }
        guard magic == NBDMagic.request else { throw .badRequestMagic(magic) }
        guard bytes.readableBytes >= NBDLimits.requestHeaderLength,
              let command = bytes.peekInteger(at: 6, as: UInt16.self),
              let length = bytes.peekInteger(at: 24, as: UInt32.self) else { return nil }
        let hasPayload = command == NBDCommand.write.rawValue
        if hasPayload {
            guard length <= maximumWritePayload else { throw .payloadTooLarge(length) }
            let total = NBDLimits.requestHeaderLength + Int(length)
            guard bytes.readableBytes >= total else {
                bytes.reserve(totalReadable: total)
                return nil
            }
        }
        var header = bytes.readSlice(length: NBDLimits.requestHeaderLength)!
        let (_, flags, _, cookie, offset, _) = header.readMultipleIntegers(as: (UInt32, UInt16, UInt16, UInt64, UInt64, UInt32).self)!
        let request = NBDRequest(flags: NBDCommandFlags(rawValue: flags), command: NBDCommand(rawValue: command),
                                 cookie: cookie, offset: offset, length: length)
        return .request(request, payload: hasPayload ? bytes.readSlice(length: Int(length))! : nil)
    }
}
