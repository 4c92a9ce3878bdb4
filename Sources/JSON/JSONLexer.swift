/// Splits bytes into JSON tokens the way QEMU 7.2's lexer does, including its error
/// recovery: a byte that cannot continue the current token is an error (reported with the
/// token text so far, that byte included), after which input is skipped up to the next
/// structural character, control character or 0xFE/0xFF byte. Clients rely on this to
/// resynchronise (QMP spec: send 0x0A or 0xFF after garbage).
struct JSONLexer {
    enum Event: Equatable {
        case token(JSONToken)
        /// Input that fits no token; `text` is what QEMU quotes in "stray '...'".
        case stray(text: [UInt8])
        /// A single token grew beyond `maximumTokenSize`; it is dropped and lexing restarts.
        case oversizedToken
    }

    private enum State {
        case start, recovery
        case doubleQuoted, doubleQuotedEscape, singleQuoted, singleQuotedEscape
        /// `0`, `-`, `[1-9][0-9]*` (or after `-`), `.`, `.[0-9]+`, `e`, `e+`, `e[+-]?[0-9]+`
        case zero, sign, digits, decimalPoint, fractionDigits, exponentMark, exponentSign, exponentDigits
        case keyword
    }

    /// What one byte does in one state.
    private enum Step {
        /// Append the byte to the token and go on in `state`.
        case append(State)
        /// Append the byte, the token is complete.
        case finish(JSONToken.Kind)
        /// The token ended before this byte; emit it and look at the byte again from `start`.
        case finishBefore(JSONToken.Kind)
        /// Insignificant byte (whitespace at the start, skipped input while recovering).
        case discard
        /// Leave recovery and look at the byte again from `start`.
        case resynchronize
        /// Append the byte and report the token so far as stray input.
        case error
    }

    let maximumTokenSize: Int
    private var state = State.start
    private var text: [UInt8] = []

    init(maximumTokenSize: Int) {
        self.maximumTokenSize = maximumTokenSize
    }

    /// Feeds one byte; appends the 0, 1 or 2 resulting events to `events`.
    mutating func feed(_ byte: UInt8, into events: inout [Event]) {
        while true {
            switch Self.step(from: state, byte) {
            case .append(let next):
                text.append(byte)
                state = next
            case .finish(let kind):
                text.append(byte)
                events.append(.token(JSONToken(kind: kind, text: text)))
                text.removeAll(keepingCapacity: true)
                state = .start
            case .finishBefore(let kind):
                events.append(.token(JSONToken(kind: kind, text: text)))
                text.removeAll(keepingCapacity: true)
                state = .start
                continue
            case .discard:
                break
            case .resynchronize:
                state = .start
                continue
            case .error:
                text.append(byte)
                events.append(.stray(text: text))
                text.removeAll(keepingCapacity: true)
                state = .recovery
            }
            break
        }
        // A security limit: no single token may hold unbounded memory.
        if text.count > maximumTokenSize {
            events.append(.oversizedToken)
            text.removeAll()
            state = .start
        }
    }

    private static func step(from state: State, _ byte: UInt8) -> Step {
        let isDigit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        switch state {
        case .start:
            switch byte {
            case UInt8(ascii: "\""): return .append(.doubleQuoted)
            case UInt8(ascii: "'"): return .append(.singleQuoted)
            case UInt8(ascii: "0"): return .append(.zero)
            case UInt8(ascii: "1")...UInt8(ascii: "9"): return .append(.digits)
            case UInt8(ascii: "-"): return .append(.sign)
            case UInt8(ascii: "{"): return .finish(.leftBrace)
            case UInt8(ascii: "}"): return .finish(.rightBrace)
            case UInt8(ascii: "["): return .finish(.leftBracket)
            case UInt8(ascii: "]"): return .finish(.rightBracket)
            case UInt8(ascii: ","): return .finish(.comma)
            case UInt8(ascii: ":"): return .finish(.colon)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): return .append(.keyword)
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): return .discard
            default: return .error
            }
        case .recovery:
            switch byte {
            case UInt8(ascii: "\t"): return .discard
            case 0x00..<0x20, 0xFE, 0xFF: return .resynchronize
            case UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                UInt8(ascii: ":"), UInt8(ascii: ","):
                return .resynchronize
            default: return .discard
            }
        case .doubleQuoted, .singleQuoted:
            let quote = state == .doubleQuoted ? UInt8(ascii: "\"") : UInt8(ascii: "'")
            switch byte {
            case quote: return .finish(.string)
            case UInt8(ascii: "\\"): return .append(state == .doubleQuoted ? .doubleQuotedEscape : .singleQuotedEscape)
            // Control characters, 0xFE and 0xFF are never part of a string; everything
            // else is, UTF-8 validity is the parser's business.
            case 0x20...0xFD: return .append(state)
            default: return .error
            }
        case .doubleQuotedEscape, .singleQuotedEscape:
            guard (0x20...0xFD).contains(byte) else { return .error }
            return .append(state == .doubleQuotedEscape ? .doubleQuoted : .singleQuoted)
        case .zero:
            if isDigit { return .error }
            if byte == UInt8(ascii: ".") { return .append(.decimalPoint) }
            return .finishBefore(.integer)
        case .sign:
            if byte == UInt8(ascii: "0") { return .append(.zero) }
            return isDigit ? .append(.digits) : .error
        case .digits:
            if isDigit { return .append(.digits) }
            if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { return .append(.exponentMark) }
            if byte == UInt8(ascii: ".") { return .append(.decimalPoint) }
            return .finishBefore(.integer)
        case .decimalPoint:
            return isDigit ? .append(.fractionDigits) : .error
        case .fractionDigits:
            if isDigit { return .append(.fractionDigits) }
            if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { return .append(.exponentMark) }
            return .finishBefore(.float)
        case .exponentMark:
            if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") { return .append(.exponentSign) }
            return isDigit ? .append(.exponentDigits) : .error
        case .exponentSign:
            return isDigit ? .append(.exponentDigits) : .error
        case .exponentDigits:
            if isDigit { return .append(.exponentDigits) }
            return .finishBefore(.float)
        case .keyword:
            if (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) { return .append(.keyword) }
            return .finishBefore(.keyword)
        }
    }
}
