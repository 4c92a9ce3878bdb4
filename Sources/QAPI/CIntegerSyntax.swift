/// Integers as QEMU's `qemu_strtoi64`/`qemu_strtou64` read them with base 0, i.e. C's
/// `strtoll`/`strtoull` requiring the whole string: optional leading white space, optional
/// sign, then `0x`/`0X` hexadecimal, `0` octal, or decimal. No unit suffixes.
enum CIntegerSyntax {
    /// A signed 64-bit integer, `nil` when malformed or out of range.
    static func int64(_ text: String) -> Int64? {
        guard let (negative, magnitude) = parse(text) else { return nil }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// An unsigned 64-bit integer, `nil` when malformed or out of range. Like `strtoull`, a
    /// negative number is accepted and wraps around (`-1` is 2^64-1).
    static func uint64(_ text: String) -> UInt64? {
        if case .value(let value) = parseUnsigned(text) { value } else { nil }
    }

    enum UnsignedParse: Equatable {
        case value(UInt64)
        case malformed
        case outOfRange
    }

    /// Like ``uint64(_:)``, telling a malformed number from one beyond 64 bits.
    static func parseUnsigned(_ text: String) -> UnsignedParse {
        switch scan(text) {
        case nil: .malformed
        case (_, _, true)?: .outOfRange
        case (let negative, let magnitude, false)?: .value(negative ? 0 &- magnitude : magnitude)
        }
    }

    /// Sign and magnitude; `nil` when malformed or when the magnitude exceeds 64 bits.
    private static func parse(_ text: String) -> (negative: Bool, magnitude: UInt64)? {
        guard let (negative, magnitude, overflow) = scan(text), !overflow else { return nil }
        return (negative, magnitude)
    }

    /// Sign, magnitude and whether the magnitude overflowed 64 bits; `nil` when malformed.
    private static func scan(_ text: String) -> (negative: Bool, magnitude: UInt64, overflow: Bool)? {
        let bytes = Array(text.utf8)
        var position = 0
        // C's isspace: space, \t, \n, \v, \f, \r.
        while position < bytes.count, bytes[position] == 0x20 || (0x09...0x0D).contains(bytes[position]) {
            position += 1
        }
        var negative = false
        if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
            negative = bytes[position] == UInt8(ascii: "-")
            position += 1
        }
        var radix: UInt64 = 10
        // "0x" only introduces hexadecimal when a hex digit follows; otherwise the "0" is
        // an octal number and the "x" trailing garbage.
        if position + 2 < bytes.count, bytes[position] == UInt8(ascii: "0"),
            bytes[position + 1] | 0x20 == UInt8(ascii: "x"), digitValue(bytes[position + 2], radix: 16) != nil
        {
            radix = 16
            position += 2
        } else if position < bytes.count, bytes[position] == UInt8(ascii: "0") {
            radix = 8
        }
        guard position < bytes.count else { return nil }
        var magnitude: UInt64 = 0
        var overflow = false
        while position < bytes.count {
            guard let digit = digitValue(bytes[position], radix: radix) else { return nil }
            let (shifted, overflowMultiply) = magnitude.multipliedReportingOverflow(by: radix)
            let (sum, overflowAdd) = shifted.addingReportingOverflow(digit)
            overflow = overflow || overflowMultiply || overflowAdd
            magnitude = sum
            position += 1
        }
        return (negative, magnitude, overflow)
    }

    /// The value of an ASCII digit in `radix` (up to 16), nil when it is not one.
    static func digitValue(_ byte: UInt8, radix: UInt64) -> UInt64? {
        let value: UInt64
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt64(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): value = UInt64(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): value = UInt64(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
        return value < radix ? value : nil
    }
}
