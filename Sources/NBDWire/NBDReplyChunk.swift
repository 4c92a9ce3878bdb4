import NIOCore

/// One chunk of a structured reply: header fields plus typed content.
public struct NBDReplyChunk: Sendable, Hashable {
    public var flags: NBDReplyChunkFlags
    public var cookie: UInt64
    public var content: NBDReplyChunkContent

    public init(flags: NBDReplyChunkFlags = .done, cookie: UInt64, content: NBDReplyChunkContent) {
        self.flags = flags
        self.cookie = cookie
        self.content = content
    }

    public var isDone: Bool { flags.contains(.done) }

    /// Writes header and payload.
    @discardableResult
    public func encode(into buffer: inout ByteBuffer) -> Int {
        let start = buffer.writerIndex
        buffer.writeNBDChunkHeader(flags: flags, type: content.type, cookie: cookie, length: 0)
        let lengthIndex = buffer.writerIndex - 4
        let payloadStart = buffer.writerIndex
        content.encodePayload(into: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - payloadStart), at: lengthIndex)
        return buffer.writerIndex - start
    }
}

/// The payload of a structured reply chunk, by type.
public enum NBDReplyChunkContent: Sendable, Hashable {
    /// Empty final chunk.
    case none
    case offsetData(offset: UInt64, data: ByteBuffer)
    case offsetHole(offset: UInt64, length: UInt32)
    case blockStatus(contextID: UInt32, extents: [NBDBlockStatusDescriptor])
    case error(NBDErrno, message: String)
    case errorOffset(NBDErrno, message: String, offset: UInt64)
    case unknown(NBDReplyChunkType, ByteBuffer)

    public var type: NBDReplyChunkType {
        switch self {
        case .none: .none
        case .offsetData: .offsetData
        case .offsetHole: .offsetHole
        case .blockStatus: .blockStatus
        case .error: .error
        case .errorOffset: .errorOffset
        case .unknown(let type, _): type
        }
    }

    func encodePayload(into buffer: inout ByteBuffer) {
        switch self {
        case .none:
            break
        case .offsetData(let offset, let data):
            buffer.writeInteger(offset)
            buffer.writeImmutableBuffer(data)
        case .offsetHole(let offset, let length):
            buffer.writeMultipleIntegers(offset, length)
        case .blockStatus(let contextID, let extents):
            buffer.writeInteger(contextID)
            for extent in extents { buffer.writeMultipleIntegers(extent.length, extent.flags) }
        case .error(let errno, let message):
            buffer.writeMultipleIntegers(errno.rawValue, UInt16(message.utf8.count))
            buffer.writeString(message)
        case .errorOffset(let errno, let message, let offset):
            buffer.writeMultipleIntegers(errno.rawValue, UInt16(message.utf8.count))
            buffer.writeString(message)
            buffer.writeInteger(offset)
        case .unknown(_, let payload):
            buffer.writeImmutableBuffer(payload)
        }
    }

    /// Interprets a chunk payload; nil when it is malformed for its type.
    public static func decode(type: NBDReplyChunkType, payload: ByteBuffer) -> NBDReplyChunkContent? {
        var payload = payload
        switch type {
        case .none:
            return payload.readableBytes == 0 ? NBDReplyChunkContent.none : nil
        case .offsetData:
            guard payload.readableBytes > 8, let offset = payload.readInteger(as: UInt64.self) else { return nil }
            return .offsetData(offset: offset, data: payload)
        case .offsetHole:
            guard payload.readableBytes == 12, let (offset, length) = payload.readMultipleIntegers(as: (UInt64, UInt32).self) else {
                return nil
            }
            return .offsetHole(offset: offset, length: length)
        case .blockStatus:
            guard let contextID = payload.readInteger(as: UInt32.self), payload.readableBytes % 8 == 0 else { return nil }
            var extents: [NBDBlockStatusDescriptor] = []
            extents.reserveCapacity(payload.readableBytes / 8)
            while let (length, flags) = payload.readMultipleIntegers(as: (UInt32, UInt32).self) {
                extents.append(NBDBlockStatusDescriptor(length: length, flags: flags))
            }
            return .blockStatus(contextID: contextID, extents: extents)
        case .error, .errorOffset:
            guard let (errno, messageLength) = payload.readMultipleIntegers(as: (UInt32, UInt16).self),
                  let message = payload.readString(length: Int(messageLength)) else { return nil }
            if type == .error {
                return payload.readableBytes == 0 ? .error(NBDErrno(rawValue: errno), message: message) : nil
            }
            guard payload.readableBytes == 8, let offset = payload.readInteger(as: UInt64.self) else { return nil }
            return .errorOffset(NBDErrno(rawValue: errno), message: message, offset: offset)
        default:
            return .unknown(type, payload)
        }
    }
}
