/// The type of a structured reply chunk (`NBD_REPLY_TYPE_*`); bit 15 marks error types.
public struct NBDReplyChunkType: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let none = NBDReplyChunkType(rawValue: 0)
    public static let offsetData = NBDReplyChunkType(rawValue: 1)
    public static let offsetHole = NBDReplyChunkType(rawValue: 2)
    public static let blockStatus = NBDReplyChunkType(rawValue: 5)
    public static let error = NBDReplyChunkType(rawValue: 0x8001)
    public static let errorOffset = NBDReplyChunkType(rawValue: 0x8002)

    public var isError: Bool { rawValue & 0x8000 != 0 }
}

/// Flags of a structured reply chunk.
public struct NBDReplyChunkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The last chunk of the reply.
    public static let done = NBDReplyChunkFlags(rawValue: 1 << 0)
}

/// One extent of a `BLOCK_STATUS` chunk.
public struct NBDBlockStatusDescriptor: Sendable, Hashable {
    public var length: UInt32
    public var flags: UInt32

    public init(length: UInt32, flags: UInt32) {
        self.length = length
        self.flags = flags
    }

    /// `base:allocation` flag: not allocated in the backing storage.
    public static let hole: UInt32 = 1 << 0
    /// `base:allocation` flag: reads as zeroes.
    public static let zero: UInt32 = 1 << 1
}
