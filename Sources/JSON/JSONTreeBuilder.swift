/// Builds one top-level value from tokens as they arrive, reporting the same first error,
/// with the same words, as QEMU's recursive-descent parser would on the complete token
/// list. Working incrementally (with an explicit stack, never recursion) means no token
/// list is kept and deep nesting cannot exhaust the call stack.
struct JSONTreeBuilder {
    /// Where inside an array the next token lands.
    private enum ArrayPhase { case afterOpen, afterComma, afterElement }
    /// Where inside an object the next token lands. QEMU parses a key with its general
    /// value parser, so any value may appear in key position and is rejected once complete.
    private enum ObjectPhase {
        case afterOpen, afterComma
        case afterKey(String)
        case afterColon(String)
        case afterMember
    }

    private enum Frame {
        case array(ArrayPhase)
        case object(ObjectPhase)
    }

    /// Members plus, once the object gets large, a key set so duplicate detection stays
    /// linear in the input (an attacker could otherwise send a million distinct keys).
    private struct ObjectUnderConstruction {
        var members: [(key: String, value: JSONValue)] = []
        var keys: Set<String> = []

        func contains(_ key: String) -> Bool {
            members.count > 8 ? keys.contains(key) : members.contains { $0.key == key }
        }

        mutating func append(_ key: String, _ value: JSONValue) {
            members.append((key: key, value: value))
            if members.count > 8 {
                if keys.isEmpty { keys = Set(members.map(\.key)) } else { keys.insert(key) }
            }
        }
    }

    /// QEMU formats parser messages into a 1024-byte buffer: longer ones are cut.
    private static let maximumMessageLength = 1023

    // Open containers, innermost last. Their contents live in separate stacks so they are
    // appended to in place (a copy per element would make big arrays quadratic).
    private var frames: [Frame] = []
    private var openArrays: [[JSONValue]] = []
    private var openObjects: [ObjectUnderConstruction] = []
    private var value: JSONValue?
    private var error: String?

    /// The outcome once the streamer decides the message is complete.
    var result: Result<JSONValue, JSONParseError> {
        if let error { return .failure(JSONParseError(message: error)) }
        if let value { return .success(value) }
        return .failure(JSONParseError(message: "premature EOI"))
    }

    mutating func consume(_ token: JSONToken) {
        // After the first error QEMU's parser stops looking; the streamer still counts
        // brackets to know where the message ends.
        guard error == nil, value == nil else { return }
        switch frames.last {
        case nil, .array(.afterComma), .object(.afterColon), .object(.afterComma):
            beginValue(token)
        case .array(.afterOpen):
            if token.kind == .rightBracket { closeContainer() } else { beginValue(token) }
        case .array(.afterElement):
            switch token.kind {
            case .rightBracket: closeContainer()
            case .comma: frames[frames.count - 1] = .array(.afterComma)
            default: fail("expected separator in list")
            }
        case .object(.afterOpen):
            if token.kind == .rightBrace { closeContainer() } else { beginValue(token) }
        case .object(.afterKey(let key)):
            if token.kind == .colon { frames[frames.count - 1] = .object(.afterColon(key)) } else { fail("missing : in object pair") }
        case .object(.afterMember):
            switch token.kind {
            case .rightBrace: closeContainer()
            case .comma: frames[frames.count - 1] = .object(.afterComma)
            default: fail("expected separator in dict")
            }
        }
    }

    private mutating func beginValue(_ token: JSONToken) {
        switch token.kind {
        case .leftBrace:
            frames.append(.object(.afterOpen))
            openObjects.append(ObjectUnderConstruction())
        case .leftBracket:
            frames.append(.array(.afterOpen))
            openArrays.append([])
        case .string:
            switch Self.decodeString(token.text) {
            case .success(let string): complete(.string(string))
            case .failure(let failure): fail(failure.bytes)
            }
        case .integer: complete(Self.integer(token.text))
        case .float: complete(.double(Self.double(token.text)))
        case .keyword:
            switch token.text {
            case Array("true".utf8): complete(.bool(true))
            case Array("false".utf8): complete(.bool(false))
            case Array("null".utf8): complete(.null)
            default: fail(Array("invalid keyword '".utf8) + token.text + Array("'".utf8))
            }
        case .rightBrace, .rightBracket, .colon, .comma:
            fail("expecting value")
        }
    }

    /// A value is finished: it becomes the result, an element, a member value or a key.
    private mutating func complete(_ finished: JSONValue) {
        let top = frames.count - 1
        switch frames.last {
        case nil:
            value = finished
        case .array:
            openArrays[openArrays.count - 1].append(finished)
            frames[top] = .array(.afterElement)
        case .object(.afterOpen), .object(.afterComma):
            guard case .string(let key) = finished else { return fail("key is not a string in object") }
            frames[top] = .object(.afterKey(key))
        case .object(.afterColon(let key)):
            // QEMU checks for a duplicate only after the member's value parsed fine.
            guard !openObjects[openObjects.count - 1].contains(key) else { return fail("duplicate key") }
            openObjects[openObjects.count - 1].append(key, finished)
            frames[top] = .object(.afterMember)
        case .object(.afterKey), .object(.afterMember):
            preconditionFailure("a value cannot complete where a separator is expected")
        }
    }

    private mutating func closeContainer() {
        switch frames.removeLast() {
        case .array: complete(.array(openArrays.removeLast()))
        case .object: complete(.object(JSONObject(openObjects.removeLast().members)))
        }
    }

    private mutating func fail(_ message: String) {
        fail(Array(message.utf8))
    }

    private mutating func fail(_ message: [UInt8]) {
        error = ModifiedUTF8.lossyString(message.prefix(Self.maximumMessageLength))
        frames.removeAll()
        openArrays.removeAll()
        openObjects.removeAll()
    }
}

/// A JSON syntax error in QEMU's words, without the "JSON parse error, " prefix.
struct JSONParseError: Error, Equatable {
    var message: String
}

extension JSONTreeBuilder {
    /// Integers stay exact: signed 64-bit if they fit, else unsigned 64-bit for positive
    /// values, else (like QEMU) the nearest double.
    static func integer(_ text: [UInt8]) -> JSONValue {
        let negative = text.first == UInt8(ascii: "-")
        var magnitude: UInt64 = 0
        for digit in text.dropFirst(negative ? 1 : 0) {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return .double(double(text)) }
            magnitude = sum
        }
        if !negative {
            return magnitude <= UInt64(Int64.max) ? .int(Int64(magnitude)) : .uint(magnitude)
        }
        if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
        if magnitude == UInt64(Int64.max) + 1 { return .int(.min) }
        return .double(double(text))
    }

    /// The lexer guarantees the syntax, so conversion cannot fail; out-of-range values become
    /// ±infinity or 0 as with C's strtod.
    static func double(_ text: [UInt8]) -> Double {
        Double(String(decoding: text, as: UTF8.self)) ?? .nan
    }

    /// Resolves a string token (quotes included) into its value, with QEMU's messages for
    /// invalid escapes and encodings.
    static func decodeString(_ token: [UInt8]) -> Result<String, ParseFailure> {
        let quote = token[0]
        var output: [UInt8] = []
        output.reserveCapacity(token.count)
        var index = 1
        // The token ends in its closing quote; QEMU reads it as a C string, so anything
        // read past the end is a NUL byte.
        func byte(_ at: Int) -> UInt8 { at < token.count ? token[at] : 0 }
        func hex4(_ at: Int) -> UInt32? {
            var value: UInt32 = 0
            for offset in 0..<4 {
                guard let digit = Self.hexDigitValue(byte(at + offset)) else { return nil }
                value = value << 4 | digit
            }
            return value
        }
        func appendScalar(_ scalar: Unicode.Scalar) {
            output.append(contentsOf: UTF8.encode(scalar)!)
        }

        while token[index] != quote {
            guard token[index] == UInt8(ascii: "\\") else {
                let (scalar, next) = ModifiedUTF8.decode(token, at: index)
                guard let scalar else { return .failure(ParseFailure("invalid UTF-8 sequence in string")) }
                appendScalar(scalar)
                index = next
                continue
            }
            let escapeStart = index
            let escaped = token[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escaped)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "u"):
                var codePoint = hex4(index)
                index += 4
                if let leading = codePoint, (0xD800...0xDBFF).contains(leading),
                    byte(index) == UInt8(ascii: "\\"), byte(index + 1) == UInt8(ascii: "u")
                {
                    if let trailing = hex4(index + 2), (0xDC00...0xDFFF).contains(trailing) {
                        codePoint = 0x10000 + ((leading & 0x3FF) << 10 | trailing & 0x3FF)
                        index += 6
                    } else {
                        codePoint = nil
                    }
                }
                guard let codePoint, ModifiedUTF8.isAcceptable(codePoint), let scalar = Unicode.Scalar(codePoint) else {
                    // QEMU quotes the escape as far as it read it, stopping at the string's end.
                    let quoted = token[escapeStart..<min(index, token.count)]
                    return .failure(ParseFailure(Array(quoted) + Array(" is not a valid Unicode character".utf8)))
                }
                appendScalar(scalar)
            default:
                return .failure(ParseFailure("invalid escape sequence in string"))
            }
        }
        return .success(String(decoding: output, as: UTF8.self))
    }

    /// A parse failure message as raw bytes (it may quote input).
    struct ParseFailure: Error {
        var bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        init(_ message: String) { bytes = Array(message.utf8) }
    }

    private static func hexDigitValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
