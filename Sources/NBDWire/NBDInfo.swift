import NIOCore

/// One piece of export information in an `NBD_REP_INFO` reply.
public enum NBDInfo: Sendable, Hashable {
    case export(size: UInt64, flags: NBDTransmissionFlags)
    case name(String)
    case description(String)
    case blockSize(minimum: UInt32, preferred: UInt32, maximum: UInt32)
    /// A type this codec does not know, kept with its raw payload (clients must ignore it).
    case unknown(NBDInfoType, [UInt8])

    public var type: NBDInfoType {
        switch self {
        case .export: .export
        case .name: .name
        case .description: .description
        case .blockSize: .blockSize
        case .unknown(let type, _): type
        }
    }

    /// Writes the reply payload: the u16 type followed by the type's data.
    @discardableResult
    public func encode(into buffer: inout ByteBuffer) -> Int {
        var written = buffer.writeInteger(type.rawValue)
        switch self {
        case .export(let size, let flags):
            written += buffer.writeInteger(size)
            written += buffer.writeInteger(flags.rawValue)
        case .name(let text), .description(let text):
            written += buffer.writeString(text)
        case .blockSize(let minimum, let preferred, let maximum):
            written += buffer.writeMultipleIntegers(minimum, preferred, maximum)
        case .unknown(_, let bytes):
            written += buffer.writeBytes(bytes)
        }
        return written
    }

    /// Reads an info payload (type included); nil when it is too short for its type.
    public static func decode(from buffer: inout ByteBuffer) -> NBDInfo? {
        guard let raw = buffer.readInteger(as: UInt16.self) else { return nil }
        let type = NBDInfoType(rawValue: raw)
        switch type {
        case .export:
            guard let (size, flags) = buffer.readMultipleIntegers(as: (UInt64, UInt16).self) else { return nil }
            return .export(size: size, flags: NBDTransmissionFlags(rawValue: flags))
        case .name:
            return .name(buffer.readString(length: buffer.readableBytes) ?? "")
        case .description:
            return .description(buffer.readString(length: buffer.readableBytes) ?? "")
        case .blockSize:
            guard let (minimum, preferred, maximum) = buffer.readMultipleIntegers(as: (UInt32, UInt32, UInt32).self) else {
                return nil
            }
            return .blockSize(minimum: minimum, preferred: preferred, maximum: maximum)
        default:
            return .unknown(type, buffer.readBytes(length: buffer.readableBytes) ?? [])
        }
    }
}
