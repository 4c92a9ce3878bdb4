/// A violation of the framing that leaves no way to resynchronise with the peer: the
/// connection must be dropped.
public enum NBDProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    case badOptionMagic(UInt64)
    case badRequestMagic(UInt32)
    case badReplyMagic(UInt32)
    case badGreeting
    /// An option request carries more data than we are willing to buffer.
    case optionTooLong(UInt32)
    /// A WRITE carries a payload larger than the advertised maximum: it cannot be skipped safely.
    case payloadTooLarge(UInt32)
    /// A reply whose layout is inconsistent with its type.
    case malformedReply(String)

    public var description: String {
        switch self {
        case .badOptionMagic: "Bad magic received"
        case .badRequestMagic(let magic): "invalid magic (got 0x\(String(magic, radix: 16)))"
        case .badReplyMagic(let magic): "invalid reply magic (got 0x\(String(magic, radix: 16)))"
        case .badGreeting: "bad server greeting"
        case .optionTooLong(let length): "len (\(length)) is larger than max len (\(NBDLimits.maximumPayload))"
        case .payloadTooLarge(let length): "len (\(length)) is larger than max len (\(NBDLimits.maximumPayload))"
        case .malformedReply(let what): "malformed reply: \(what)"
        }
    }
}
