/// Byte sizes as QEMU's `qemu_strtosz` reads them (keyval values of QAPI type `size`):
/// a decimal number with an optional fraction and an optional binary suffix
/// (`B`, `K`, `M`, `G`, `T`, `P`, `E`, either case; a fraction needs a suffix other than `B`),
/// or a hexadecimal number without fraction.
public enum SizeSyntax {
    public static func parse(_ text: String) -> UInt64? {
        let bytes = Array(text.utf8)
        var position = 0
        func at(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

        // The integral part: decimal digits after optional white space; no minus sign.
        while let byte = at(position), byte == 0x20 || (0x09...0x0D).contains(byte) { position += 1 }
        if at(position) == UInt8(ascii: "+") { position += 1 }
        let digitsStart = position
        var integral: UInt64 = 0
        while let byte = at(position), let digit = CIntegerSyntax.digitValue(byte, radix: 10) {
            let (shifted, overflow1) = integral.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            integral = sum
            position += 1
        }
        guard position > digitsStart else { return nil }

        var fraction: Double = 0
        if integral == 0, let byte = at(position), byte | 0x20 == UInt8(ascii: "x") {
            // Hexadecimal: the "0x" prefix and at least one digit; no fraction. (QEMU 7.2
            // still accepts a suffix here, with a deprecation warning we do not print.)
            position += 1
            let hexStart = position
            while let byte = at(position), let digit = CIntegerSyntax.digitValue(byte, radix: 16) {
                guard integral >> 60 == 0 else { return nil }
                integral = integral << 4 | digit
                position += 1
            }
            guard position > hexStart, at(position) != UInt8(ascii: ".") else { return nil }
        } else if at(position) == UInt8(ascii: ".") {
            let fractionStart = position
            position += 1
            while let byte = at(position), CIntegerSyntax.digitValue(byte, radix: 10) != nil { position += 1 }
            // An exponent makes the whole input invalid; "1.k" (no digits) is a whole number.
            if let byte = at(position), byte | 0x20 == UInt8(ascii: "e"), at(position + 1).map({ CIntegerSyntax.digitValue($0, radix: 10) != nil || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") }) == true {
                return nil
            }
            if position > fractionStart + 1 {
                fraction = Double(String(decoding: bytes[fractionStart..<position], as: UTF8.self)) ?? 0
            }
        }

        var multiplier: UInt64 = 1
        if let byte = at(position), let suffixMultiplier = suffixMultiplier(byte) {
            multiplier = suffixMultiplier
            position += 1
        }
        guard position == bytes.count else { return nil }
        if multiplier == 1 { return fraction == 0 ? integral : nil }

        // Exact fixed-point product, rounding half up, as QEMU does.
        let fixedFraction = fraction * 0x1p64 >= 0x1p64 ? UInt64.max : UInt64(fraction * 0x1p64)
        let whole = integral.multipliedFullWidth(by: multiplier)
        let part = fixedFraction.multipliedFullWidth(by: multiplier)
        var (result, carry) = whole.low.addingReportingOverflow(part.high)
        var high = whole.high + (carry ? 1 : 0)
        (result, carry) = result.addingReportingOverflow(part.low >> 63)
        high += carry ? 1 : 0
        return high == 0 ? result : nil
    }

    private static func suffixMultiplier(_ byte: UInt8) -> UInt64? {
        switch byte | 0x20 {
        case UInt8(ascii: "b"): 1
        case UInt8(ascii: "k"): 1 << 10
        case UInt8(ascii: "m"): 1 << 20
        case UInt8(ascii: "g"): 1 << 30
        case UInt8(ascii: "t"): 1 << 40
        case UInt8(ascii: "p"): 1 << 50
        case UInt8(ascii: "e"): 1 << 60
        default: nil
        }
    }
}
