/// Parses a byte stream of top-level JSON values in QEMU 7.2's dialect, as a QMP monitor
/// reads its input: values may be split across appends or share one, whitespace between them
/// is ignored, strings may be single-quoted (and `\'` is an escape), duplicate keys are an
/// error, and bad input produces errors with QEMU's exact descriptions, after which parsing
/// resynchronises like QEMU does.
///
/// A message ends when its brackets balance (or a closing bracket has no partner), so a
/// top-level number or keyword only ends at the next byte. Per message at most 64 MiB of
/// token text, about 2 M tokens and 1024 levels of nesting are accepted; beyond that the
/// message is dropped with an error and parsing goes on with the following tokens (so the
/// rest of an over-deep message yields further errors, exactly as QEMU does).
///
/// A pure value: `append(bytes:)` only buffers, `next()` does the work on demand, so a
/// caller that stops asking stops parsing.
public struct JSONStreamParser: Sendable {
    /// One message of the stream.
    public enum Item: Sendable, Equatable {
        case value(JSONValue)
        /// The description QMP reports as a GenericError, e.g.
        /// `JSON parse error, expecting value`.
        case error(String)
    }

    /// The resource limits of QEMU's JSON streamer.
    struct Limits: Sendable {
        var maximumTokenSize = 64 << 20
        var maximumTokenCount = 2 << 20
        var maximumNesting = 1024
        static let qemu = Limits()
    }

    private let limits: Limits
    private var input: [UInt8] = []
    private var inputIndex = 0
    private var lexer: JSONLexer
    private var lexerEvents: [JSONLexer.Event] = []
    private var pending: [Item] = []
    private var pendingIndex = 0

    // The message being assembled.
    private var builder = JSONTreeBuilder()
    private var braceDepth = 0
    private var bracketDepth = 0
    private var tokenCount = 0
    private var tokenBytes = 0

    public init() { self.init(limits: .qemu) }

    init(limits: Limits) {
        self.limits = limits
        lexer = JSONLexer(maximumTokenSize: limits.maximumTokenSize)
    }

    /// Bytes received but not yet parsed.
    public var bufferedByteCount: Int { input.count - inputIndex }

    /// Whether `next()` may have something without more input: an item already parsed and
    /// not handed out, or unparsed bytes other than whitespace (the newline after a message
    /// alone does not count).
    public var hasInputWaiting: Bool {
        pendingIndex < pending.count
            || input[inputIndex...].contains { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }
    }

    public mutating func append(bytes: some Sequence<UInt8>) {
        if inputIndex == input.count {
            input.removeAll(keepingCapacity: true)
            inputIndex = 0
        } else if inputIndex > 4096, inputIndex > input.count / 2 {
            input.removeFirst(inputIndex)
            inputIndex = 0
        }
        input.append(contentsOf: bytes)
    }

    /// The next complete message, or `nil` when more input is needed.
    public mutating func next() -> Item? {
        while pendingIndex == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingIndex = 0
            guard inputIndex < input.count else { return nil }
            lexer.feed(input[inputIndex], into: &lexerEvents)
            inputIndex += 1
            for event in lexerEvents { process(event) }
            lexerEvents.removeAll(keepingCapacity: true)
        }
        defer { pendingIndex += 1 }
        return pending[pendingIndex]
    }

    private mutating func process(_ event: JSONLexer.Event) {
        switch event {
        case .stray(let text):
            emit(.error("JSON parse error, stray '" + ModifiedUTF8.lossyString(text) + "'"))
        case .oversizedToken:
            emit(.error("JSON token size limit exceeded"))
        case .token(let token):
            switch token.kind {
            case .leftBrace: braceDepth += 1
            case .rightBrace: braceDepth -= 1
            case .leftBracket: bracketDepth += 1
            case .rightBracket: bracketDepth -= 1
            default: break
            }
            if tokenBytes + token.text.count + 1 > limits.maximumTokenSize {
                return emit(.error("JSON token size limit exceeded"))
            }
            if tokenCount + 1 > limits.maximumTokenCount {
                return emit(.error("JSON token count limit exceeded"))
            }
            if braceDepth + bracketDepth > limits.maximumNesting {
                return emit(.error("JSON nesting depth limit exceeded"))
            }
            tokenBytes += token.text.count
            tokenCount += 1
            builder.consume(token)
            let open = (braceDepth > 0 || bracketDepth > 0) && braceDepth >= 0 && bracketDepth >= 0
            if !open {
                switch builder.result {
                case .success(let value): emit(.value(value))
                case .failure(let error): emit(.error("JSON parse error, " + error.message))
                }
            }
        }
    }

    /// Hands out a message and starts afresh.
    private mutating func emit(_ item: Item) {
        pending.append(item)
        builder = JSONTreeBuilder()
        braceDepth = 0
        bracketDepth = 0
        tokenCount = 0
        tokenBytes = 0
    }
}
