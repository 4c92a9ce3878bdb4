/// One token of QEMU's JSON dialect, with the exact input bytes it was made of.
struct JSONToken: Equatable {
    enum Kind: Equatable {
        case leftBrace, rightBrace, leftBracket, rightBracket, colon, comma
        /// A double- or single-quoted string, quotes included in `text`, escapes unresolved.
        case string
        case integer
        case float
        /// `[a-z]+`: the lexer accepts any such word, the parser knows only true/false/null.
        case keyword
    }

    var kind: Kind
    var text: [UInt8]
}
