#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONValue {
    /// The value as JSON text, members in insertion order.
    public func serialized(pretty: Bool = false) -> [UInt8] {
        serialized(format: JSONFormat(pretty: pretty))
    }

    public func serialized(format: JSONFormat) -> [UInt8] {
        var buffer: [UInt8] = []
        append(to: &buffer, format: format)
        return buffer
    }

    /// Writes the value's JSON text at the end of `buffer` (no allocation per value, so big
    /// replies stay cheap).
    public func append(to buffer: inout [UInt8], format: JSONFormat = JSONFormat()) {
        var writer = JSONWriter(format: format, buffer: buffer)
        buffer = []  // hand over the storage so appends don't copy it
        writer.write(self, depth: 0)
        buffer = writer.buffer
    }
}

/// Appends JSON text to a byte buffer.
struct JSONWriter {
    let format: JSONFormat
    var buffer: [UInt8]

    mutating func write(_ value: JSONValue, depth: Int) {
        switch value {
        case .null: buffer.append(contentsOf: "null".utf8)
        case .bool(let flag): buffer.append(contentsOf: flag ? "true".utf8 : "false".utf8)
        case .int(let number): writeDecimal(number.magnitude, negative: number < 0)
        case .uint(let number): writeDecimal(number, negative: false)
        case .double(let number): writeDouble(number)
        case .string(let string): writeString(string)
        case .array(let elements):
            buffer.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                writeSeparator(first: index == 0, depth: depth + 1)
                write(element, depth: depth + 1)
            }
            writeClosing(UInt8(ascii: "]"), depth: depth)
        case .object(let object):
            buffer.append(UInt8(ascii: "{"))
            let members = format.keyOrder == .qemu ? QEMUHashOrder.qdictOrder(object.members) : object.members
            for (index, member) in members.enumerated() {
                writeSeparator(first: index == 0, depth: depth + 1)
                writeString(member.key)
                buffer.append(contentsOf: ": ".utf8)
                write(member.value, depth: depth + 1)
            }
            writeClosing(UInt8(ascii: "}"), depth: depth)
        }
    }

    private mutating func writeSeparator(first: Bool, depth: Int) {
        if !first { buffer.append(UInt8(ascii: ",")) }
        if format.pretty {
            writeLineBreak(depth: depth)
        } else if !first {
            buffer.append(UInt8(ascii: " "))
        }
    }

    private mutating func writeClosing(_ bracket: UInt8, depth: Int) {
        if format.pretty { writeLineBreak(depth: depth) }
        buffer.append(bracket)
    }

    private mutating func writeLineBreak(depth: Int) {
        buffer.append(contentsOf: format.lineBreak)
        buffer.append(contentsOf: repeatElement(UInt8(ascii: " "), count: depth * 4))
    }

    private mutating func writeDecimal(_ magnitude: UInt64, negative: Bool) {
        if negative { buffer.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var count = 0
        var rest = magnitude
        withUnsafeMutableBytes(of: &digits) { storage in
            repeat {
                count += 1
                storage[24 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            buffer.append(contentsOf: storage[(24 - count)...])
        }
    }

    /// QEMU prints doubles with `%.17g` (so 0.1 is `0.10000000000000001`, 1.5e3 is `1500`,
    /// -0.0 is `-0`). For infinities it prints `inf`, which is not JSON and breaks clients;
    /// we print the largest finite double of the same sign instead (a JSON number that
    /// every client reads back as "huge"). NaN cannot come from JSON input; it is printed
    /// as `null`, the usual JSON stand-in.
    private mutating func writeDouble(_ number: Double) {
        if number.isNaN { return buffer.append(contentsOf: "null".utf8) }
        let finite = number.isInfinite ? (number < 0 ? -Double.greatestFiniteMagnitude : .greatestFiniteMagnitude) : number
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { text in
            let length = withVaList([finite]) { vsnprintf(text.baseAddress, 32, "%.17g", $0) }
            text.withMemoryRebound(to: UInt8.self) { buffer.append(contentsOf: $0.prefix(Int(length))) }
        }
    }

    private mutating func writeString(_ string: String) {
        buffer.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var index = 0
            while index < utf8.count {
                // Copy runs of plain printable ASCII in one go.
                let runStart = index
                while index < utf8.count, Self.isPlain(utf8[index]) { index += 1 }
                if index > runStart { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                guard index < utf8.count else { break }

                let lead = utf8[index]
                switch lead {
                case UInt8(ascii: "\""): buffer.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
                case 0x08: buffer.append(contentsOf: #"\b"#.utf8)
                case 0x0C: buffer.append(contentsOf: #"\f"#.utf8)
                case 0x0A: buffer.append(contentsOf: #"\n"#.utf8)
                case 0x0D: buffer.append(contentsOf: #"\r"#.utf8)
                case 0x09: buffer.append(contentsOf: #"\t"#.utf8)
                case 0..<0x80:
                    writeUnicodeEscape(UInt32(lead))
                default:
                    // Swift strings hold valid UTF-8, so the sequence length follows from the lead.
                    let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
                    var scalar = UInt32(lead) & (0xFF >> (length + 1))
                    for offset in 1..<length { scalar = scalar << 6 | UInt32(utf8[index + offset] & 0x3F) }
                    if scalar > 0xFFFF {
                        writeUnicodeEscape(0xD800 + ((scalar - 0x10000) >> 10))
                        writeUnicodeEscape(0xDC00 + ((scalar - 0x10000) & 0x3FF))
                    } else {
                        writeUnicodeEscape(scalar)
                    }
                    index += length - 1
                }
                index += 1
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    private static func isPlain(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private mutating func writeUnicodeEscape(_ unit: UInt32) {
        buffer.append(UInt8(ascii: "\\"))
        buffer.append(UInt8(ascii: "u"))
        for shift in stride(from: 12, through: 0, by: -4) {
            buffer.append(Self.hexDigits[Int(unit >> UInt32(shift) & 0xF)])
        }
    }
}
