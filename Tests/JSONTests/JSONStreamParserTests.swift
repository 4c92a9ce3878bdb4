import Testing
@testable import JSON

// Expected items are QSD 7.2's observed `desc` texts (see qmp.md §1 and §3.2, and probes of
// qemu-storage-daemon 7.2.22 with raw bytes over its QMP socket).

private typealias Item = JSONStreamParser.Item

private func parse(_ bytes: [UInt8], limits: JSONStreamParser.Limits = .qemu) -> [Item] {
    var parser = JSONStreamParser(limits: limits)
    parser.append(bytes: bytes)
    var items: [Item] = []
    while let item = parser.next() { items.append(item) }
    return items
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Parses `input` whole, byte by byte, and split in two at every position; all must agree.
private func expectItems(_ input: [UInt8], _ expected: [Item], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(parse(input) == expected, sourceLocation: sourceLocation)
    var byteByByte = JSONStreamParser()
    var items: [Item] = []
    for byte in input {
        byteByByte.append(bytes: [byte])
        while let item = byteByByte.next() { items.append(item) }
    }
    #expect(items == expected, "byte by byte", sourceLocation: sourceLocation)
    for split in 0...input.count {
        var parser = JSONStreamParser()
        var items: [Item] = []
        parser.append(bytes: input[..<split])
        while let item = parser.next() { items.append(item) }
        parser.append(bytes: input[split...])
        while let item = parser.next() { items.append(item) }
        #expect(items == expected, "split at \(split)", sourceLocation: sourceLocation)
    }
}

private func error(_ text: String) -> Item { .error(text) }
private let expectingValue = error("JSON parse error, expecting value")

@Test func parsesSeveralValuesPerAppendAndIgnoresWhitespace() {
    expectItems(bytes("{\"execute\":\"query-version\",\"id\":1}\n\n  {\"execute\":\"x\"}\t\r\n[] "), [
        .value(["execute": "query-version", "id": 1]),
        .value(["execute": "x"]),
        .value([]),
    ])
}

@Test func topLevelScalarsEndOnlyAtTheNextByte() {
    expectItems(bytes("42"), [])
    expectItems(bytes("null"), [])
    expectItems(bytes("42\n"), [.value(42)])
    expectItems(bytes("null "), [.value(nil)])
    expectItems(bytes("\"hello\""), [.value("hello")])
    expectItems(bytes("true}"), [.value(true), expectingValue])
}

@Test func incompleteObjectWaits() {
    expectItems(bytes("{\"execute\": \"query-version\", \"arguments\": {"), [])
}

@Test func syntaxErrorsUseQEMUWording() {
    expectItems(bytes("{\"execute\":\"query-version\",}"), [expectingValue])
    expectItems(bytes("{bad json}"), [error("JSON parse error, invalid keyword 'bad'")])
    expectItems(bytes("{\"execute\":\"query-version\",\"id\":1,\"id\":2}"), [error("JSON parse error, duplicate key")])
    expectItems(bytes("}"), [expectingValue])
    expectItems(bytes("]"), [expectingValue])
    expectItems(bytes(":"), [expectingValue])
    expectItems(bytes(","), [expectingValue])
    expectItems(bytes("{\"a\":1}}"), [.value(["a": 1]), expectingValue])
    expectItems(bytes("{\"execute\" \"x\"}"), [error("JSON parse error, missing : in object pair")])
    expectItems(bytes("{\"a\"}"), [error("JSON parse error, missing : in object pair")])
    expectItems(bytes("{1:2}"), [error("JSON parse error, key is not a string in object")])
    expectItems(bytes("{[1]:2}"), [error("JSON parse error, key is not a string in object")])
    expectItems(bytes("{[1 2]:2}"), [error("JSON parse error, expected separator in list")])
    expectItems(bytes("{\"a\":}"), [expectingValue])
    expectItems(bytes("[1 2]"), [error("JSON parse error, expected separator in list")])
    expectItems(bytes("{\"a\":1 \"b\":2}"), [error("JSON parse error, expected separator in dict")])
    expectItems(bytes("[1,]"), [expectingValue])
    expectItems(bytes("[,1]"), [expectingValue])
    expectItems(bytes("{\"a\":1]"), [error("JSON parse error, expected separator in dict")])
    expectItems(bytes("[}]"), [expectingValue, expectingValue])
    expectItems(bytes("{,}"), [expectingValue])
}

@Test func firstErrorWins() {
    // The member value fails before the duplicate key is noticed.
    expectItems(bytes("{\"a\":1,\"a\":[1 2]}"), [error("JSON parse error, expected separator in list")])
    expectItems(bytes("{\"a\":1,\"a\":[1]} "), [error("JSON parse error, duplicate key")])
}

@Test func duplicateKeysAreFoundInLargeObjects() {
    let members = (0..<100).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
    #expect(parse(bytes("{\(members),\"k7\":1}")) == [error("JSON parse error, duplicate key")])
    guard case .value(let value)? = parse(bytes("{\(members)}")).first else {
        Issue.record("no value")
        return
    }
    #expect(value.objectValue?.count == 100)
    #expect(value["k99"] == 99)
    #expect(value.objectValue?.keys.first == "k0")
}

@Test func longKeywordMessageIsCutLikeQEMUs1024ByteBuffer() {
    let keyword = String(repeating: "a", count: 2000)
    let message = "invalid keyword '" + keyword
    #expect(parse(bytes("{\(keyword)}")) == [error("JSON parse error, " + message.prefix(1023))])
}

@Test func singleQuotedStringsAndApostropheEscape() {
    expectItems(bytes(#"{'execute':'query-version','id':'a\'b"c'}"#), [
        .value(["execute": "query-version", "id": "a'b\"c"]),
    ])
    expectItems(bytes(#"["\'"]"#), [.value(["'"])])
}

@Test func escapesAndUnicode() {
    expectItems(bytes(#"["\u0000\ud83d\ude00\u00e9\/\b\f\n\r\t"#) + [0x7F] + bytes(#"", "\u00E9"]"#), [
        .value(["\u{0}\u{1F600}\u{E9}/\u{8}\u{C}\n\r\t\u{7F}", "é"]),
    ])
    expectItems([0x22, 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 0x22], [.value("é\u{1F600}")])
    // QEMU's modified UTF-8: C0 80 is U+0000.
    expectItems([0x22, 0xC0, 0x80, 0x22], [.value("\u{0}")])
}

@Test func invalidStringsUseQEMUWording() {
    expectItems(bytes(#""\u12""#), [error(#"JSON parse error, \u12" is not a valid Unicode character"#)])
    expectItems(bytes(#""\ud83d\u0041""#), [error(#"JSON parse error, \ud83d is not a valid Unicode character"#)])
    expectItems(bytes(#""\ud83dx""#), [error(#"JSON parse error, \ud83d is not a valid Unicode character"#)])
    expectItems(bytes(#""\udc00""#), [error(#"JSON parse error, \udc00 is not a valid Unicode character"#)])
    expectItems(bytes(#""\uffff""#), [error(#"JSON parse error, \uffff is not a valid Unicode character"#)])
    expectItems(bytes(#""\x""#), [error("JSON parse error, invalid escape sequence in string")])
    let invalidUTF8 = error("JSON parse error, invalid UTF-8 sequence in string")
    expectItems([0x22, 0xC3, 0x22], [invalidUTF8])
    expectItems([0x22, 0xEF, 0xBF, 0xBF, 0x22], [invalidUTF8])  // noncharacter U+FFFF
    expectItems([0x22, 0xE0, 0x80, 0x80, 0x22], [invalidUTF8])  // overlong
    expectItems([0x22, 0xED, 0xA0, 0x80, 0x22], [invalidUTF8])  // surrogate
    expectItems([0x22, 0x80, 0x22], [invalidUTF8])
    expectItems([0x22, 0xF8, 0x88, 0x80, 0x80, 0x80, 0x22], [invalidUTF8])
}

@Test func strayBytesResetTheParser() {
    expectItems(bytes("{\"execute\":\"query-ver") + [0x01] + bytes("{\"execute\":\"query-version\",\"id\":5}"), [
        error("JSON parse error, stray '\"query-ver\u{01}'"),
        .value(["execute": "query-version", "id": 5]),
    ])
    expectItems([0xFF] + bytes("{\"id\":5}"), [error("JSON parse error, stray '\u{FFFD}'"), .value(["id": 5])])
    // The quoted text shows invalid sequences the way QEMU's writer does.
    expectItems([0x22, 0xE0, 0x80, 0x80, 0x01], [error("JSON parse error, stray '\"\u{FFFD}\u{01}'")])
    expectItems([0x22, 0xC0, 0x80, 0xEF, 0xBF, 0xBF, 0xF0, 0x9F, 0x98, 0x01],
                [error("JSON parse error, stray '\"\u{0}\u{FFFD}\u{FFFD}\u{01}'")])
    // After an error, input is skipped up to a control or structural character; a NUL
    // ends QEMU's C string, so nothing is quoted for it.
    expectItems(bytes("01 -x 1.x 1e+ 1") + [0xC3] + bytes(" true") + [0xC3] + bytes(" Tru %d ") + [0x00, 0x20], [
        error("JSON parse error, stray '01'"),
        error("JSON parse error, stray ''"),
    ])
    expectItems(bytes("[\"\t\"]"), [error("JSON parse error, stray '\"\t'"), expectingValue])
    // Recovery stops at structural characters and line feeds, which are then parsed.
    expectItems(bytes("%garbage {\"a\":1}"), [error("JSON parse error, stray '%'"), .value(["a": 1])])
    expectItems(bytes("%garbage\n\"a\" "), [error("JSON parse error, stray '%'"), .value("a")])
}

@Test func lexerErrorsInsideTokens() {
    let cases: [([UInt8], String)] = [
        (bytes("-x"), "-x"), (bytes("1.x"), "1.x"), (bytes("1e+x"), "1e+x"), (bytes("1ex"), "1ex"),
        (bytes("00"), "00"), (bytes("Tru"), "T"), (bytes("%d"), "%"),
        ([0x22, 0x5C, 0x01], "\"\\\u{01}"), ([0x27, 0x61, 0x0A], "'a\n"),
    ]
    for (input, stray) in cases {
        #expect(parse(input + [0x0A]) == [error("JSON parse error, stray '\(stray)'")], "\(input)")
    }
}

@Test func numbersAndKeywordsEndAtAnyByteTheyCannotAbsorb() {
    expectItems(bytes("1") + [0xC3], [.value(1), error("JSON parse error, stray '\u{FFFD}'")])
    expectItems(bytes("[1, tru") + [0x80] + bytes("e]"), [error("JSON parse error, stray '\u{FFFD}'"), expectingValue])
    expectItems(bytes("true") + [0x01], [.value(true), error("JSON parse error, stray '\u{01}'")])
}

@Test func numbers() {
    expectItems(bytes("[0, -0, 0.0, 1E2, 1e-2, -1.5E+2, 9223372036854775807, -9223372036854775808]"), [
        .value([0, 0, .double(0), .double(100), .double(0.01), .double(-150), .int(.max), .int(.min)]),
    ])
    expectItems(bytes("[12345678901234567890, 18446744073709551615, 18446744073709551616, -9223372036854775809, 1e400, -1e400]"), [
        .value([
            .uint(12_345_678_901_234_567_890), .uint(.max), .double(18_446_744_073_709_551_616),
            .double(-0x1p63), .double(.infinity), .double(-.infinity),
        ]),
    ])
    // "0" is a complete token: what follows starts a new one.
    expectItems(bytes("0e5 "), [.value(0), error("JSON parse error, invalid keyword 'e'"), .value(5)])
}

@Test func nestingLimitDropsTheMessageAndTheRestCascades() {
    let nestingError = error("JSON nesting depth limit exceeded")
    #expect(parse(bytes(String(repeating: "[", count: 1025) + String(repeating: "]", count: 1025)))
        == [nestingError] + Array(repeating: expectingValue, count: 1025))
    let deepest = (0..<1023).reduce(JSONValue.array([])) { inner, _ in .array([inner]) }
    #expect(parse(bytes(String(repeating: "[", count: 1024) + String(repeating: "]", count: 1024))) == [.value(deepest)])
    #expect(parse(bytes(String(repeating: "{\"a\":", count: 1025) + "1" + String(repeating: "}", count: 1025)))
        == [nestingError, .value("a"), expectingValue, .value(1)] + Array(repeating: expectingValue, count: 1025))
    // After the error the remaining 975 brackets form a valid (if useless) message.
    let depth975 = (0..<974).reduce(JSONValue.array([])) { inner, _ in .array([inner]) }
    #expect(parse(bytes(String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000)))
        == [nestingError, .value(depth975)] + Array(repeating: expectingValue, count: 1025))
}

@Test func tokenCountAndSizeLimits() {
    let small = JSONStreamParser.Limits(maximumTokenSize: 16, maximumTokenCount: 5, maximumNesting: 3)
    #expect(parse(bytes("[1,2,3]"), limits: small) == [error("JSON token count limit exceeded"), expectingValue])
    #expect(parse(bytes("[1,2]"), limits: small) == [.value([1, 2])])
    #expect(parse(bytes(#"["aaaaaaa","bbbbbbb"]"#), limits: small) == [error("JSON token size limit exceeded"), expectingValue])
    // One token beyond the limit is cut off by the lexer, which starts over after it.
    #expect(parse(bytes("\"" + String(repeating: "a", count: 20) + "\" "), limits: small)
        == [error("JSON token size limit exceeded"), error("JSON parse error, invalid keyword 'aaaa'")])
    #expect(parse(bytes("[[[[1]]]]"), limits: small)
        == [error("JSON nesting depth limit exceeded"), .value(1)] + Array(repeating: expectingValue, count: 4))
}

@Test func realTokenCountLimit() {
    // Observed on QSD: 2 Mi tokens are fine, one more drops the message.
    let body = String(repeating: "1,", count: 1_048_574)
    guard case .value(let value)? = parse(bytes("[" + body + "[]]")).first else {
        Issue.record("no value")
        return
    }
    #expect(value.arrayValue?.count == 1_048_575)
    #expect(parse(bytes("[" + body + "1,1]")) == [error("JSON token count limit exceeded")])
}

@Test func bufferIsReleasedAsItIsParsed() {
    var parser = JSONStreamParser()
    parser.append(bytes: bytes("{\"a\":1} {\"b\""))
    #expect(parser.bufferedByteCount == 12)
    #expect(parser.next() == .value(["a": 1]))
    #expect(parser.next() == nil)
    #expect(parser.bufferedByteCount == 0)
    parser.append(bytes: bytes(":2}"))
    #expect(parser.next() == .value(["b": 2]))
}

@Test func inputWaitsUntilOnlyWhitespaceIsLeft() {
    var parser = JSONStreamParser()
    #expect(!parser.hasInputWaiting)
    parser.append(bytes: bytes("{\"a\":1}\r\n {\"b\":2} \t\n"))
    #expect(parser.hasInputWaiting)
    #expect(parser.next() == .value(["a": 1]))
    #expect(parser.hasInputWaiting, "the second message")
    #expect(parser.next() == .value(["b": 2]))
    #expect(!parser.hasInputWaiting, "whitespace only")
    parser.append(bytes: bytes("{"))
    #expect(parser.hasInputWaiting)
}
