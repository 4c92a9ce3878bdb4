/// The magic numbers that frame every NBD message.
public enum NBDMagic {
    /// "NBDMAGIC": first eight bytes of the server greeting.
    public static let greeting: UInt64 = 0x4e42_444d_4147_4943
    /// "IHAVEOPT": second word of the greeting and prefix of every option request.
    public static let option: UInt64 = 0x4948_4156_454f_5054
    /// Prefix of every option reply.
    public static let optionReply: UInt64 = 0x0003_e889_0455_65a9
    /// Compact (28-byte) transmission request.
    public static let request: UInt32 = 0x2560_9513
    /// Simple (16-byte) reply.
    public static let simpleReply: UInt32 = 0x6744_6698
    /// Structured reply chunk.
    public static let structuredReply: UInt32 = 0x668e_33ef
}

/// Sizes the protocol fixes.
public enum NBDLimits {
    /// Strings (names, descriptions, messages) must not be longer (QEMU's `NBD_MAX_STRING_SIZE`).
    public static let maximumStringLength = 4096
    /// Largest READ/WRITE payload we accept and advertise (QEMU's `NBD_MAX_BUFFER_SIZE`, 32 MiB).
    public static let maximumPayload = 32 * 1024 * 1024
    /// Length of the compact request header.
    public static let requestHeaderLength = 28
    /// Length of the simple reply header.
    public static let simpleReplyHeaderLength = 16
    /// Length of the structured reply chunk header.
    public static let chunkHeaderLength = 20
    /// Length of the option request header (magic, option, length).
    public static let optionHeaderLength = 16
    /// Length of the option reply header (magic, option, type, length).
    public static let optionReplyHeaderLength = 20
}
