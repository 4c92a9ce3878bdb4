import JSON
import Testing
@testable import QMP

// Expected transcripts are verbatim qemu-storage-daemon 7.2.22 output (qmp.md §2, §3.2, §6
// and probes over its QMP socket).

private let version: JSONValue = [
    "qemu": ["major": 7, "minor": 2, "micro": 22],
    "package": "Debian 1:7.2+dfsg-7+deb12u18+b3",
]
private let versionText = #"{"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}"#

private func makeSession(pretty: Bool = false) -> QMPSession {
    QMPSession(version: version, commandNames: ["query-version", "query-commands", "block-set-write-threshold"], pretty: pretty)
}

/// A stand-in daemon: query-version succeeds, block-set-write-threshold fails like QSD.
private func run(_ request: QMPRequest) -> Result<JSONValue, QMPError> {
    switch request.command {
    case "query-version": .success(version)
    case "block-set-write-threshold": .failure(.generic("Device 'nope' not found"))
    default: .success([:])
    }
}

/// Everything the session (and the stand-in daemon) writes back for `input`, fed in one
/// piece; also checks that feeding it byte by byte gives the same transcript.
private func transcript(_ session: inout QMPSession, _ input: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    var byteByByte = session
    var output: [UInt8] = []
    session.receive(input.utf8)
    drain(&session, into: &output)
    var slowOutput: [UInt8] = []
    for byte in input.utf8 {
        byteByByte.receive([byte])
        drain(&byteByByte, into: &slowOutput)
    }
    #expect(slowOutput == output, "byte by byte", sourceLocation: sourceLocation)
    #expect(byteByByte.acceptsEvents == session.acceptsEvents, sourceLocation: sourceLocation)
    return String(decoding: output, as: UTF8.self)
}

private func drain(_ session: inout QMPSession, into output: inout [UInt8]) {
    while let action = session.nextAction() {
        switch action {
        case .send(let bytes): output += bytes
        case .execute(let request): output += session.response(to: request, result: run(request))
        }
    }
}

private func negotiated(oob: Bool = false) -> QMPSession {
    var session = makeSession()
    let reply = transcript(&session, oob ? #"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"# : #"{"execute":"qmp_capabilities"}"#)
    precondition(reply == "{\"return\": {}}\r\n")
    return session
}

private func lines(_ replies: String...) -> String { replies.map { $0 + "\r\n" }.joined() }

@Test func greeting() {
    let greeting = #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#
    #expect(String(decoding: makeSession().greeting(), as: UTF8.self) == greeting + "\r\n")
    let pretty = [
        "{", "    \"QMP\": {", "        \"version\": {", "            \"qemu\": {", "                \"micro\": 22,",
        "                \"minor\": 2,", "                \"major\": 7", "            },",
        "            \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"", "        },", "        \"capabilities\": [",
        "            \"oob\"", "        ]", "    }", "}", "",
    ].joined(separator: "\r\n")
    #expect(String(decoding: makeSession(pretty: true).greeting(), as: UTF8.self) == pretty)
}

@Test func negotiationRejectsOtherCommandsAndSendsNoEvents() {
    var session = makeSession()
    #expect(!session.acceptsEvents)
    #expect(transcript(&session, #"{"execute": "query-version"}"#)
        == lines(#"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#))
    #expect(transcript(&session, #"{"execute":"query-version","id":1}"#)
        == lines(#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#))
    #expect(transcript(&session, #"{"execute":"nonexistent"}"#)
        == lines(#"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#))
    #expect(transcript(&session, #"{"exec-oob":"qmp_capabilities"}"#)
        == lines(#"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#))
    #expect(!session.acceptsEvents)
}

@Test func capabilitiesArgumentsAreValidatedAndFailuresKeepNegotiating() {
    let cases: [(String, String)] = [
        (#"{"enable":["foo"]}"#, "Parameter 'null' does not accept value 'foo'"),
        (#"{"enable":"oob"}"#, "Invalid parameter type for 'enable', expected: array"),
        (#"{"enable":null}"#, "Invalid parameter type for 'enable', expected: array"),
        (#"{"enable":{}}"#, "Invalid parameter type for 'enable', expected: array"),
        (#"{"enable":[1]}"#, "Invalid parameter type for 'enable[0]', expected: string"),
        (#"{"enable":[[]]}"#, "Invalid parameter type for 'enable[0]', expected: string"),
        (#"{"enable":[null]}"#, "Invalid parameter type for 'enable[0]', expected: string"),
        (#"{"enable":["oob",1]}"#, "Invalid parameter type for 'enable[1]', expected: string"),
        (#"{"enable":["oob","bar"]}"#, "Parameter 'null' does not accept value 'bar'"),
        (#"{"enable":["foo"],"x":1}"#, "Parameter 'null' does not accept value 'foo'"),
        (#"{"x":1,"enable":"oob"}"#, "Invalid parameter type for 'enable', expected: array"),
        (#"{"x":1}"#, "Parameter 'x' is unexpected"),
        (#"{"x":1,"y":2}"#, "Parameter 'y' is unexpected"),
        (#"{"y":1,"x":2}"#, "Parameter 'y' is unexpected"),
    ]
    var session = makeSession()
    for (arguments, desc) in cases {
        #expect(transcript(&session, #"{"execute":"qmp_capabilities","arguments":\#(arguments)}"#)
            == lines(#"{"error": {"class": "GenericError", "desc": "\#(desc)"}}"#), "\(arguments)")
        #expect(!session.acceptsEvents)
    }
    #expect(transcript(&session, #"{"execute":"qmp_capabilities","arguments":{"enable":[]},"id":{"a":1}}"#)
        == lines(#"{"return": {}, "id": {"a": 1}}"#))
    #expect(session.acceptsEvents)
}

@Test func capabilitiesWithOOBAndId() {
    var session = makeSession()
    #expect(transcript(&session, #"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 1}"#)
        == lines(#"{"return": {}, "id": 1}"#))
    var twice = makeSession()
    #expect(transcript(&twice, #"{"execute":"qmp_capabilities","arguments":{"enable":["oob","oob"]},"id":1}"#)
        == lines(#"{"return": {}, "id": 1}"#))
}

@Test func commandModeRefusesASecondNegotiation() {
    var session = negotiated()
    #expect(session.acceptsEvents)
    #expect(transcript(&session, #"{"execute":"qmp_capabilities"}"#)
        == lines(#"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#))
    // Arguments are checked before that.
    #expect(transcript(&session, #"{"execute":"qmp_capabilities","arguments":{"x":1}}"#)
        == lines(#"{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}"#))
    #expect(transcript(&session, #"{"execute":"qmp_capabilities","arguments":{"enable":["foo"]}}"#)
        == lines(#"{"error": {"class": "GenericError", "desc": "Parameter 'null' does not accept value 'foo'"}}"#))
    #expect(session.acceptsEvents)
}

@Test func commandsAreHandedToTheDaemon() {
    var session = negotiated()
    session.receive(#"{"execute":"block-set-write-threshold","arguments":{"node-name":"n","write-threshold":5},"id":"x"}"#.utf8)
    #expect(session.nextAction() == .execute(QMPRequest(
        command: "block-set-write-threshold", arguments: ["node-name": "n", "write-threshold": 5], id: "x")))
    #expect(session.nextAction() == nil)
    session.receive(#"{"execute":"query-version"} {"execute":"query-version","arguments":{},"id":null}"#.utf8)
    #expect(session.nextAction() == .execute(QMPRequest(command: "query-version")))
    #expect(session.nextAction() == .execute(QMPRequest(command: "query-version", arguments: [:], id: .null)))
}

@Test func responsesEchoTheIdLikeQSD() {
    var session = negotiated()
    #expect(transcript(&session, #"{"execute":"query-version","id":0.1}{"execute":"query-version","id":null}{"execute":"query-version","id":[]}{"execute":"query-version"}"#)
        == lines(
            #"{"return": \#(versionText), "id": 0.10000000000000001}"#,
            #"{"return": \#(versionText), "id": null}"#,
            #"{"return": \#(versionText), "id": []}"#,
            #"{"return": \#(versionText)}"#))
    #expect(transcript(&session, #"{"execute":"query-version","id":"\u00e9\ud83d\ude00"}"#)
        == lines(#"{"return": \#(versionText), "id": "\u00E9\uD83D\uDE00"}"#))
    #expect(transcript(&session, #"{"execute":"block-set-write-threshold","arguments":{},"id":12}"#)
        == lines(#"{"id": 12, "error": {"class": "GenericError", "desc": "Device 'nope' not found"}}"#))
    #expect(String(decoding: session.response(to: QMPRequest(command: "x", id: 7), result: .failure(.deviceNotActive("Block job 'x' not found"))), as: UTF8.self)
        == #"{"id": 7, "error": {"class": "DeviceNotActive", "desc": "Block job 'x' not found"}}"# + "\r\n")
}

@Test func malformedInputTable() {
    let generic = { (desc: String) in #"{"error": {"class": "GenericError", "desc": "\#(desc)"}}"# }
    let cases: [(String, String)] = [
        (#"{"execute":"query-version",}"#, generic("JSON parse error, expecting value")),
        (#"{bad json}"#, generic("JSON parse error, invalid keyword 'bad'")),
        (#"[1,2,3]"#, generic("QMP input must be a JSON object")),
        (#""hello""#, generic("QMP input must be a JSON object")),
        ("42\n", generic("QMP input must be a JSON object")),
        ("null ", generic("QMP input must be a JSON object")),
        (#"{}"#, generic("QMP input lacks member 'execute'")),
        (#"{"id":7}"#, #"{"id": 7, "error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#),
        (#"{"arguments":{},"id":1}"#, #"{"id": 1, "error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#),
        (#"{"execute":42,"id":6}"#, #"{"id": 6, "error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#),
        (#"{"execute":"query-version","bogus":1,"id":3}"#, #"{"id": 3, "error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#),
        (#"{"execute":"query-version","arguments":[1],"id":4}"#, #"{"id": 4, "error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#),
        (#"{"execute":"query-version","arguments":null,"id":4}"#, #"{"id": 4, "error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#),
        (#"{"execute":"query-version","control":{"run-oob":true}}"#, generic("QMP input member 'control' is unexpected")),
        (#"{"execute":"nonexistent-cmd","id":"x"}"#, #"{"id": "x", "error": {"class": "CommandNotFound", "desc": "The command nonexistent-cmd has not been found"}}"#),
        (#"{"execute":"query-version","id":1,"id":2}"#, generic("JSON parse error, duplicate key")),
        (#"{"execute":"query-version","id":"\#u{C3}"}"#, #"{"return": \#(versionText), "id": "\u00C3"}"#),
        // Without OOB enabled, exec-oob is just an unexpected member.
        (#"{"execute":"query-version","exec-oob":"query-version","id":"both"}"#, #"{"id": "both", "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#),
        // With several problems, the first member in QDict order wins.
        (#"{"execute":42,"bogus":1}"#, generic("QMP input member 'bogus' is unexpected")),
        (#"{"arguments":1,"bogus":1,"execute":"x"}"#, generic("QMP input member 'bogus' is unexpected")),
        (#"{"execute":"nonexistent","arguments":1}"#, generic("QMP input member 'arguments' must be an object")),
    ]
    for (input, reply) in cases {
        var session = negotiated()
        #expect(transcript(&session, input) == lines(reply), "\(input)")
    }
}

@Test func parserResetsAfterStrayBytes() {
    var session = negotiated()
    #expect(transcript(&session, "{\"execute\":\"query-ver\u{01}{\"execute\":\"query-version\",\"id\":5}") == lines(
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"query-ver\u0001'"}}"#,
        #"{"return": \#(versionText), "id": 5}"#))
    var raw = negotiated()
    raw.receive([0xFF] + Array(#"{"execute":"query-version","id":5}"#.utf8))
    var output: [UInt8] = []
    drain(&raw, into: &output)
    #expect(String(decoding: output, as: UTF8.self) == lines(
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"return": \#(versionText), "id": 5}"#))
    var invalid = negotiated()
    invalid.receive(Array(#"{"execute":"query-version","id":""#.utf8) + [0xC3, 0x22, 0x7D])
    output = []
    drain(&invalid, into: &output)
    #expect(String(decoding: output, as: UTF8.self)
        == lines(#"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#))
}

@Test func partialInputWaits() {
    var session = negotiated()
    session.receive(#"{"execute":"query-version","id":"#.utf8)
    #expect(session.nextAction() == nil)
    #expect(session.bufferedByteCount == 0)
    session.receive("1}".utf8)
    #expect(session.nextAction() == .execute(QMPRequest(command: "query-version", id: 1)))
}

@Test func outOfBandTable() {
    var session = makeSession()
    let input = [
        #"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#,
        #"{"exec-oob":"query-version","id":"oob1"}"#,
        #"{"exec-oob":"nonexistent","id":"oob2"}"#,
        #"{"exec-oob":"qmp_capabilities","id":3}"#,
        #"{"execute":"query-version","exec-oob":"query-version","id":"both"}"#,
        #"{"exec-oob":"query-version","execute":"query-version","id":"both2"}"#,
        #"{"exec-oob":1,"execute":"query-version"}"#,
        #"{"exec-oob":"query-version","execute":1}"#,
        #"{"exec-oob":"query-version","arguments":[]}"#,
        #"{"exec-oob":"query-version","bogus":[]}"#,
        #"{"exec-oob":"qmp_capabilities","arguments":{"x":1}}"#,
        #"{"execute":"qmp_capabilities","arguments":{"enable":[]}}"#,
        #"{"exec-oob":"query-version","control":{"run-oob":true}}"#,
        #"{"execute":"query-version","id":"in-band"}"#,
    ].joined()
    #expect(transcript(&session, input) == lines(
        #"{"return": {}}"#,
        #"{"id": "oob1", "error": {"class": "GenericError", "desc": "The command query-version does not support OOB"}}"#,
        #"{"id": "oob2", "error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
        #"{"id": 3, "error": {"class": "GenericError", "desc": "The command qmp_capabilities does not support OOB"}}"#,
        #"{"id": "both", "error": {"class": "GenericError", "desc": "QMP input member 'execute' clashes with 'exec-oob'"}}"#,
        #"{"id": "both2", "error": {"class": "GenericError", "desc": "QMP input member 'execute' clashes with 'exec-oob'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' must be a string"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "The command qmp_capabilities does not support OOB"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'control' is unexpected"}}"#,
        #"{"return": \#(versionText), "id": "in-band"}"#))
}

@Test func prettyReplies() {
    var session = makeSession(pretty: true)
    #expect(transcript(&session, #"{"execute":"nope"}{"execute":"qmp_capabilities"}[1,2,3]"#) == [
        "{", "    \"error\": {", "        \"class\": \"CommandNotFound\",",
        "        \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"", "    }", "}",
        "{", "    \"return\": {", "    }", "}",
        "{", "    \"error\": {", "        \"class\": \"GenericError\",", "        \"desc\": \"QMP input must be a JSON object\"", "    }", "}",
        "",
    ].joined(separator: "\r\n"))
}

@Test func events() {
    let event = QMPSession.event(
        name: "BLOCK_WRITE_THRESHOLD",
        data: ["node-name": "q0", "amount-exceeded": 1_114_112, "write-threshold": 1_048_576],
        timestamp: (seconds: 1_796_023_903, microseconds: 764_774), pretty: false)
    #expect(String(decoding: event, as: UTF8.self)
        == #"{"timestamp": {"seconds": 1796023903, "microseconds": 764774}, "event": "BLOCK_WRITE_THRESHOLD", "data": {"node-name": "q0", "write-threshold": 1048576, "amount-exceeded": 1114112}}"# + "\r\n")
    let bare = QMPSession.event(name: "X", data: nil, timestamp: (seconds: -1, microseconds: -1), pretty: false)
    #expect(String(decoding: bare, as: UTF8.self) == #"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "X"}"# + "\r\n")
    let pretty = QMPSession.event(name: "BLOCK_EXPORT_DELETED", data: ["id": "e0"], timestamp: (seconds: 1_796_028_916, microseconds: 977_649), pretty: true)
    #expect(String(decoding: pretty, as: UTF8.self) == [
        "{", "    \"timestamp\": {", "        \"seconds\": 1796028916,", "        \"microseconds\": 977649", "    },",
        "    \"event\": \"BLOCK_EXPORT_DELETED\",", "    \"data\": {", "        \"id\": \"e0\"", "    }", "}", "",
    ].joined(separator: "\r\n"))
}

@Test func errorHelpers() {
    #expect(QMPError.generic("x") == QMPError(.genericError, "x"))
    #expect(QMPError.commandNotFound("x").errorClass.rawValue == "CommandNotFound")
    #expect(QMPError.deviceNotFound("x").errorClass.rawValue == "DeviceNotFound")
    #expect(QMPError.deviceNotActive("x").errorClass.rawValue == "DeviceNotActive")
    #expect(QMPError.generic("Device 'x' not found").description == "Device 'x' not found")
}
