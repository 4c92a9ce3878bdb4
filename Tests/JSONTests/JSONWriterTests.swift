import Testing
@testable import JSON

// Expected texts are verbatim output of qemu-storage-daemon 7.2.22.

private func text(_ value: JSONValue, _ format: JSONFormat = JSONFormat()) -> String {
    String(decoding: value.serialized(format: format), as: UTF8.self)
}

/// query-version's return, built in QAPI member order as QEMU's output visitor does.
private let version: JSONValue = [
    "qemu": ["major": 7, "minor": 2, "micro": 22],
    "package": "Debian 1:7.2+dfsg-7+deb12u18+b3",
]

@Test func compactLayoutUsesQEMUSeparators() {
    #expect(text(["a": 1, "b": [true, false, nil], "c": [:], "d": []]) == #"{"a": 1, "b": [true, false, null], "c": {}, "d": []}"#)
    #expect(String(decoding: JSONValue.array([1, "x"]).serialized(), as: UTF8.self) == #"[1, "x"]"#)
}

@Test func qmpFormatPrintsMembersInQDictOrder() {
    let reply: JSONValue = ["return": version, "id": 1]
    #expect(text(reply, .qmp(pretty: false))
        == #"{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": 1}"#)
    let error: JSONValue = ["error": ["class": "GenericError", "desc": "x"], "id": 7]
    #expect(text(error, .qmp(pretty: false)) == #"{"id": 7, "error": {"class": "GenericError", "desc": "x"}}"#)
}

@Test func prettyLayoutMatchesQSDPrettyOn() {
    let reply: JSONValue = ["return": version, "id": [1, [:], [], ["a": [["b": 1]]], [[]]]]
    let expected = [
        "{",
        "    \"return\": {",
        "        \"qemu\": {",
        "            \"micro\": 22,",
        "            \"minor\": 2,",
        "            \"major\": 7",
        "        },",
        "        \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"",
        "    },",
        "    \"id\": [",
        "        1,",
        "        {",
        "        },",
        "        [",
        "        ],",
        "        {",
        "            \"a\": [",
        "                {",
        "                    \"b\": 1",
        "                }",
        "            ]",
        "        },",
        "        [",
        "            [",
        "            ]",
        "        ]",
        "    ]",
        "}",
    ].joined(separator: "\r\n")
    #expect(text(reply, .qmp(pretty: true)) == expected)
    #expect(text([:], JSONFormat(pretty: true)) == "{\n}")
    #expect(String(decoding: JSONValue.array([1]).serialized(pretty: true), as: UTF8.self) == "[\n    1\n]")
}

@Test func stringsArePureASCIIWithUpperCaseEscapes() {
    #expect(text("é\u{1F600}") == #""\u00E9\uD83D\uDE00""#)
    #expect(text("\u{0}\u{1F600}é/\u{8}\u{C}\n\r\t\u{7F}\u{1}") == #""\u0000\uD83D\uDE00\u00E9/\b\f\n\r\t\u007F\u0001""#)
    #expect(text("a'b\"c\\d") == #""a'b\"c\\d""#)
    #expect(text("\u{FFFD}\u{800}\u{10FFFF}") == #""\uFFFD\u0800\uDBFF\uDFFF""#)
    #expect(text(["ключ": "значение"]) == #"{"\u043A\u043B\u044E\u0447": "\u0437\u043D\u0430\u0447\u0435\u043D\u0438\u0435"}"#)
}

@Test func numbersPrintLikeQEMU() {
    let values: JSONValue = [
        .double(0.1), .double(-0.0), .double(1500), .uint(12_345_678_901_234_567_890),
        .double(-0x1p63), .double(1e23), .double(0.5), .double(1e-7),
        .double(123_456_789.123), .int(.min), .int(.max), .uint(.max), 0, -1,
    ]
    #expect(text(values) == "[0.10000000000000001, -0, 1500, 12345678901234567890, -9.2233720368547758e+18, "
        + "9.9999999999999992e+22, 0.5, 9.9999999999999995e-08, 123456789.123, -9223372036854775808, "
        + "9223372036854775807, 18446744073709551615, 0, -1]")
}

@Test func nonFiniteDoublesStayValidJSON() {
    // QEMU would print `inf`; we clamp to the largest finite double and print NaN as null.
    #expect(text([.double(.infinity), .double(-.infinity), .double(.nan)])
        == "[1.7976931348623157e+308, -1.7976931348623157e+308, null]")
}

@Test func parsedIdsRoundTripAsQSDEchoesThem() {
    var parser = JSONStreamParser()
    parser.append(bytes: Array("[1e400,-1e400,-0.0,1.5e3,12345678901234567890,-9223372036854775809,100000000000000000000000,0.5,1e-7,123456789.123] ".utf8))
    guard case .value(let value)? = parser.next() else {
        Issue.record("no value")
        return
    }
    #expect(text(value) == "[1.7976931348623157e+308, -1.7976931348623157e+308, -0, 1500, 12345678901234567890, "
        + "-9.2233720368547758e+18, 9.9999999999999992e+22, 0.5, 9.9999999999999995e-08, 123456789.123]")
}

@Test func appendKeepsExistingBytes() {
    var buffer = Array("x".utf8)
    JSONValue.object(["a": "b"]).append(to: &buffer)
    #expect(buffer == Array(#"x{"a": "b"}"#.utf8))
}

@Test func largeRepliesSerializeQuickly() {
    // A 500-node query result, each node with a few dozen members.
    let node: JSONValue = [
        "iops_rd": 0, "detect_zeroes": "off", "image": ["virtual-size": 33_554_432, "filename": "/tmp/a.qcow2", "format": "qcow2"],
        "iops_wr": 0, "ro": false, "node-name": "q0", "backing_file_depth": 0, "drv": "qcow2", "iops": 0, "bps_wr": 0,
        "write_threshold": 1_048_576, "encrypted": false, "bps": 0, "bps_rd": 0,
        "cache": ["no-flush": false, "direct": false, "writeback": true], "file": "/tmp/a.qcow2",
    ]
    let reply: JSONValue = ["return": .array(Array(repeating: node, count: 500))]
    let clock = ContinuousClock()
    var size = 0
    let elapsed = clock.measure { size = reply.serialized(format: .qmp(pretty: false)).count }
    #expect(size > 100_000)
    #expect(elapsed < .seconds(1))
}
