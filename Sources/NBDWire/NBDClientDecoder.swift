import NIOCore

/// What a server sends, as a client decodes it.
public enum NBDServerMessage: Sendable, Hashable {
    case greeting(NBDHandshakeFlags)
    case optionReply(NBDOption, NBDOptionReply)
    /// The answer to `NBD_OPT_EXPORT_NAME`.
    case exportNameReply(size: UInt64, flags: NBDTransmissionFlags)
    /// A simple reply; `data` holds a successful READ's bytes.
    case simpleReply(error: NBDErrno?, cookie: UInt64, data: ByteBuffer?)
    case chunk(NBDReplyChunk)
}

/// Decodes the byte stream a server sends (for clients and tests). Simple replies to READ
/// carry data whose length only the request knows: register it with
/// `expectSimpleReadReply(cookie:length:)` before the reply arrives.
public struct NBDClientDecoder {
    public enum Phase: Sendable, Hashable {
        case greeting
        case options
        /// After `NBD_OPT_EXPORT_NAME`: the fixed-size export answer comes next.
        case exportNameReply(noZeroes: Bool)
        case transmission
    }

    public var phase: Phase
    private var bytes = NBDByteAccumulator()
    private var pendingReadLengths: [UInt64: Int] = [:]

    public init(phase: Phase = .greeting) {
        self.phase = phase
    }

    public mutating func append(_ buffer: ByteBuffer) {
        bytes.append(buffer)
    }

    public mutating func expectSimpleReadReply(cookie: UInt64, length: Int) {
        pendingReadLengths[cookie] = length
    }

    public mutating func next() throws(NBDProtocolError) -> NBDServerMessage? {
        switch phase {
        case .greeting:
            guard bytes.readableBytes >= 18 else { return nil }
            guard bytes.readInteger(as: UInt64.self) == NBDMagic.greeting,
                  bytes.readInteger(as: UInt64.self) == NBDMagic.option else { throw .badGreeting }
            phase = .options
            return .greeting(NBDHandshakeFlags(rawValue: bytes.readInteger(as: UInt16.self)!))
        case .options:
            guard bytes.readableBytes >= NBDLimits.optionReplyHeaderLength,
                  let length = bytes.peekInteger(at: 16, as: UInt32.self),
                  bytes.readableBytes >= NBDLimits.optionReplyHeaderLength + Int(length) else { return nil }
            let magic = bytes.readInteger(as: UInt64.self)!
            guard magic == NBDMagic.optionReply else { throw .malformedReply("option reply magic 0x\(String(magic, radix: 16))") }
            let option = NBDOption(rawValue: bytes.readInteger(as: UInt32.self)!)
            let type = NBDOptionReplyType(rawValue: bytes.readInteger(as: UInt32.self)!)
            bytes.skip(4)
            let payload = bytes.readSlice(length: Int(length))!
            guard let reply = NBDOptionReply.decode(type: type, payload: payload) else {
                throw .malformedReply("option reply type \(type.rawValue)")
            }
            return .optionReply(option, reply)
        case .exportNameReply(let noZeroes):
            let length = noZeroes ? 10 : 134
            guard bytes.readableBytes >= length else { return nil }
            let size = bytes.readInteger(as: UInt64.self)!
            let flags = bytes.readInteger(as: UInt16.self)!
            bytes.skip(length - 10)
            phase = .transmission
            return .exportNameReply(size: size, flags: NBDTransmissionFlags(rawValue: flags))
        case .transmission:
            return try nextReply()
        }
    }

    private mutating func nextReply() throws(NBDProtocolError) -> NBDServerMessage? {
        guard let magic = bytes.peekInteger(as: UInt32.self) else { return nil }
        switch magic {
        case NBDMagic.simpleReply:
            guard bytes.readableBytes >= NBDLimits.simpleReplyHeaderLength,
                  let error = bytes.peekInteger(at: 4, as: UInt32.self),
                  let cookie = bytes.peekInteger(at: 8, as: UInt64.self) else { return nil }
            let dataLength = error == 0 ? pendingReadLengths[cookie] ?? 0 : 0
            guard bytes.readableBytes >= NBDLimits.simpleReplyHeaderLength + dataLength else { return nil }
            bytes.skip(NBDLimits.simpleReplyHeaderLength)
            let expectedData = pendingReadLengths.removeValue(forKey: cookie) != nil
            let data = expectedData && error == 0 ? bytes.readSlice(length: dataLength) : nil
            return .simpleReply(error: error == 0 ? nil : NBDErrno(rawValue: error), cookie: cookie, data: data)
        case NBDMagic.structuredReply:
            guard bytes.readableBytes >= NBDLimits.chunkHeaderLength,
                  let length = bytes.peekInteger(at: 16, as: UInt32.self),
                  bytes.readableBytes >= NBDLimits.chunkHeaderLength + Int(length) else { return nil }
            bytes.skip(4)
            let flags = NBDReplyChunkFlags(rawValue: bytes.readInteger(as: UInt16.self)!)
            let type = NBDReplyChunkType(rawValue: bytes.readInteger(as: UInt16.self)!)
            let cookie = bytes.readInteger(as: UInt64.self)!
            bytes.skip(4)
            let payload = bytes.readSlice(length: Int(length))!
            guard let content = NBDReplyChunkContent.decode(type: type, payload: payload) else {
                throw .malformedReply("chunk type \(type.rawValue)")
            }
            if flags.contains(.done) { pendingReadLengths.removeValue(forKey: cookie) }
            return .chunk(NBDReplyChunk(flags: flags, cookie: cookie, content: content))
        default:
            throw .badReplyMagic(magic)
        }
    }
}
