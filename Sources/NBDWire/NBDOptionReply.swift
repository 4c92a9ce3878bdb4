import NIOCore

/// A reply of the server to one option request (everything after the 20-byte reply header's
/// option field).
public enum NBDOptionReply: Sendable, Hashable {
    case ack
    /// One export of an `NBD_OPT_LIST` answer.
    case server(name: String, description: String)
    case info(NBDInfo)
    case metaContext(id: UInt32, name: String)
    /// An error type (bit 31 set) with a human-readable message.
    case error(NBDOptionReplyType, message: String)
    /// A non-error type this codec does not know.
    case unknown(NBDOptionReplyType, [UInt8])

    public var type: NBDOptionReplyType {
        switch self {
        case .ack: .ack
        case .server: .server
        case .info: .info
        case .metaContext: .metaContext
        case .error(let type, _): type
        case .unknown(let type, _): type
        }
    }

    /// Writes the full reply (header included) answering `option`.
    @discardableResult
    public func encode(option: NBDOption, into buffer: inout ByteBuffer) -> Int {
        let start = buffer.writerIndex
        buffer.writeMultipleIntegers(NBDMagic.optionReply, option.rawValue, type.rawValue, UInt32(0))
        let lengthIndex = buffer.writerIndex - 4
        let payloadStart = buffer.writerIndex
        switch self {
        case .ack:
            break
        case .server(let name, let description):
            buffer.writeInteger(UInt32(name.utf8.count))
            buffer.writeString(name)
            buffer.writeString(description)
        case .info(let info):
            info.encode(into: &buffer)
        case .metaContext(let id, let name):
            buffer.writeInteger(id)
            buffer.writeString(name)
        case .error(_, let message):
            buffer.writeString(message)
        case .unknown(_, let bytes):
            buffer.writeBytes(bytes)
        }
        buffer.setInteger(UInt32(buffer.writerIndex - payloadStart), at: lengthIndex)
        return buffer.writerIndex - start
    }

    /// Interprets the payload of a reply of `type`; nil when it is malformed.
    public static func decode(type: NBDOptionReplyType, payload: ByteBuffer) -> NBDOptionReply? {
        var payload = payload
        if type.isError {
            return .error(type, message: payload.readString(length: payload.readableBytes) ?? "")
        }
        switch type {
        case .ack:
            return payload.readableBytes == 0 ? .ack : nil
        case .server:
            guard let length = payload.readInteger(as: UInt32.self),
                  let name = payload.readString(length: Int(length)) else { return nil }
            return .server(name: name, description: payload.readString(length: payload.readableBytes) ?? "")
        case .info:
            return NBDInfo.decode(from: &payload).map { .info($0) }
        case .metaContext:
            guard let id = payload.readInteger(as: UInt32.self) else { return nil }
            return .metaContext(id: id, name: payload.readString(length: payload.readableBytes) ?? "")
        default:
            return .unknown(type, payload.readBytes(length: payload.readableBytes) ?? [])
        }
    }
}
