/// QEMU's reading of "modified UTF-8": standard UTF-8, except that the overlong pair
/// `C0 80` stands for U+0000, and that noncharacters (U+FDD0...U+FDEF, U+xxFFFE, U+xxFFFF),
/// surrogates and anything beyond U+10FFFF are invalid. The JSON parser rejects strings with
/// invalid sequences; error messages that quote raw input show each invalid sequence as
/// U+FFFD, consuming exactly the bytes QEMU consumes so the texts match byte for byte.
enum ModifiedUTF8 {
    /// Decodes the code point starting at `index`. Returns `nil` as the scalar for an
    /// invalid sequence, and in both cases the index just past the bytes QEMU consumes: one
    /// byte for a bad lead byte, the lead and the valid continuation bytes when one is
    /// missing, the whole sequence when it is complete but not an acceptable code point.
    static func decode<Bytes: RandomAccessCollection<UInt8>>(
        _ bytes: Bytes, at index: Bytes.Index
    ) -> (scalar: Unicode.Scalar?, next: Bytes.Index) {
        let lead = bytes[index]
        var next = bytes.index(after: index)
        if lead < 0x80 { return (Unicode.Scalar(lead), next) }
        // 0xFE/0xFF can never start a sequence; 10xxxxxx is a stray continuation byte.
        if lead >= 0xFE || lead & 0x40 == 0 { return (nil, next) }

        var length = 0
        var mask: UInt8 = 0x80
        while lead & mask != 0 {
            length += 1
            mask >>= 1
        }
        var codePoint = UInt32(lead & (mask &- 1))
        for _ in 1..<length {
            guard next != bytes.endIndex, bytes[next] & 0xC0 == 0x80 else { return (nil, next) }
            codePoint = codePoint << 6 | UInt32(bytes[next] & 0x3F)
            next = bytes.index(after: next)
        }
        let shortestForLength: [UInt32] = [0x80, 0x800, 0x10000, 0x20_0000, 0x400_0000]
        let overlong = codePoint < shortestForLength[length - 2] && !(codePoint == 0 && length == 2)
        guard isAcceptable(codePoint), !overlong, let scalar = Unicode.Scalar(codePoint) else {
            return (nil, next)
        }
        return (scalar, next)
    }

    /// Whether QEMU accepts `codePoint` in a string, whether written raw or as `\uXXXX`.
    static func isAcceptable(_ codePoint: UInt32) -> Bool {
        if codePoint > 0x10FFFF { return false }
        if (0xFDD0...0xFDEF).contains(codePoint) || codePoint & 0xFFFE == 0xFFFE { return false }
        return !(0xD800...0xDFFF).contains(codePoint)
    }

    /// The text of raw input bytes as QEMU would print them in an error message: read as a C
    /// string (it ends at the first NUL byte), every invalid sequence shown as U+FFFD.
    static func lossyString<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes) -> String {
        var scalars = String.UnicodeScalarView()
        var index = bytes.startIndex
        while index != bytes.endIndex, bytes[index] != 0 {
            let (scalar, next) = decode(bytes, at: index)
            scalars.append(scalar ?? "\u{FFFD}")
            index = next
        }
        return String(scalars)
    }
}
