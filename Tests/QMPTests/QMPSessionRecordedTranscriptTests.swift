import JSON
import Testing
@testable import QMP

// Randomly generated and mutated QMP input, sent to qemu-storage-daemon 7.2.22 on a fresh
// connection (after no negotiation, plain negotiation, or negotiation with OOB), with what
// it answered. The fake daemon below stands in for query-version (the only command used).
// Input bytes outside printable ASCII are written <XX>. Cases where OOB replies raced ahead
// of in-band ones in QSD are not included (see QMPSession's ordering note).

private struct RecordedTranscript {
    enum Mode { case none, neg, oob }
    var mode: Mode
    var pretty: Bool
    var input: String
    var output: [String]
    init(_ mode: Mode, pretty: Bool, _ input: String, _ output: [String]) {
        (self.mode, self.pretty, self.input, self.output) = (mode, pretty, input, output)
    }

    var inputBytes: [UInt8] {
        var bytes: [UInt8] = []
        var rest = Substring(input)
        while let byte = rest.utf8.first {
            if byte == UInt8(ascii: "<"), let close = rest.firstIndex(of: ">") {
                bytes.append(UInt8(rest[rest.index(after: rest.startIndex)..<close], radix: 16)!)
                rest = rest[rest.index(after: close)...]
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return bytes
    }
}

private let version: JSONValue = [
    "qemu": ["major": 7, "minor": 2, "micro": 22],
    "package": "Debian 1:7.2+dfsg-7+deb12u18+b3",
]

/// query-version takes no arguments: QSD reports the first one in GLib hash order.
private func queryVersion(_ request: QMPRequest) -> Result<JSONValue, QMPError> {
    let keys = QEMUHashOrder.glibOrder(QEMUHashOrder.qdictOrder(request.arguments.members).map(\.key))
    guard let unexpected = keys.first else { return .success(version) }
    return .failure(.generic("Parameter '\(unexpected)' is unexpected"))
}

@Test(arguments: recordedTranscripts)
private func replaysLikeQSD(_ recorded: RecordedTranscript) {
    var session = QMPSession(version: version, commandNames: ["query-version"], pretty: recorded.pretty)
    switch recorded.mode {
    case .none: break
    case .neg: session.receive(#"{"execute":"qmp_capabilities"}"#.utf8)
    case .oob: session.receive(#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#.utf8)
    }
    if recorded.mode != .none { _ = session.nextAction() }
    session.receive(recorded.inputBytes)
    var output: [UInt8] = []
    while let action = session.nextAction() {
        switch action {
        case .send(let bytes): output += bytes
        case .execute(let request): output += session.response(to: request, result: queryVersion(request))
        }
    }
    #expect(String(decoding: output, as: UTF8.self) == recorded.output.map { $0 + "\r\n" }.joined())
}

private let recordedTranscripts: [RecordedTranscript] = [
    RecordedTranscript(.neg, pretty: false, #"{'euxecute':'query-version',id'+:'x\'y'}{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\\'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob": "query-version"} {'execute': 'query-commands',  enable': ['nonexistent', [true], {'arguments': [], 'x'[: {'arguments': ['oob', 'oob']}}]} <0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '']}}]} \n'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: true, #"{"exec-oob": "query-version", "enable": 12345678901234567890}<0A>"#, [
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "QMP input member 'exec-oob' is unexpected""#,
        #"    }"#,
        #"}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob": {}, "bogus": {}, "<C3><A9>": [["oob"], {}, [{"exec-oob": {"<C3><A9>": true, "execute": -0.0}}, -922337203685477580+9, -1]]}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '+'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob":"query-version","id":[1,<80>{"a":null}]}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.none, pretty: true, #"{"e1ecute": "query-comman<00>ds"}<0A>"#, [
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "JSON parse error, stray '\"query-comman'""#,
        #"    }"#,
        #"}"#,
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "JSON parse error, expecting value""#,
        #"    }"#,
        #"}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute": "qmp_capabilities", "id": 12345678901234567890}{"execute": "qmp_capabilities", "id": {}, "bogus": {"a": -9223372036854775809}}<0A>"#, [
        #"{"id": 12345678901234567890, "error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#,
        #"{"id": {}, "error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#,
    ]),
    RecordedTranscript(.none, pretty: true, #"{'exec-oob': {}, 'control': [], 'arguments': {'enable': 0.1}}{"exec-oob": "query-commands", "control": {"<C3><A9>": []}} {"<C3><A9>": ["oob", "oob", "query-commands"], "bogus": true, "enable": -0.0}<0A><0A>"#, [
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "QMP input member 'exec-oob' is unexpected""#,
        #"    }"#,
        #"}"#,
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "QMP input member 'exec-oob' is unexpected""#,
        #"    }"#,
        #"}"#,
        #"{"#,
        #"    "error": {"#,
        #"        "class": "GenericError","#,
        #"        "desc": "QMP input member '\u00E9' is unexpected""#,
        #"    }"#,
        #"}"#,
    ]),
    RecordedTranscript(.neg, pretty: true, #"{"execute": "qmp_capabilitie"} <0A>"#, [
        #"{"#,
        #"    "error": {"#,
        #"        "class": "CommandNotFound","#,
        #"        "desc": "The command qmp_capabilitie has not been found""#,
        #"    }"#,
        #"}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"n1<C3>,<09>2,{"a":true}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'n'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{'execute': {'x': {'bogus': {'execute': {'y': 1e+300}, 'y': 0.1}}, 'control': 1.5, 'a': [{}, []]}, 'a': 12345678901234567890} {"execute": ["oob", "oob", "query-version"], "arguments": {"y": 1.5}} {"bogus": false} <0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute": "query-version", "id": [1.5, -1]}<0A>{"execute": "nonfexistent", "bogus": "<F0><9F><98><80>", "y": [[{"control": ["query-version"+}]]}<0A>"#, [
        #"{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": [1.5, -1]}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '+'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.oob, pretty: false, #"{"execute": "query-commands", "y": "/\\<C3><A9>"}{"execute": "nonexistent"}<0A>{'execute': 'qmp_capabilities', 'a': -0.0}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'y' is unexpected"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute":"nonexistent""arguments":{"a":[1,2.5e3,-n]},"id":"\u-00e9"}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-n'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, \\u-00e is not a valid Unicode character"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{fexec-oob":"query-ve<00>rsion","id":[1,{"a":ull}]}[1,2,{"a":true}]<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-o'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"query-ve'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'ull'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"[1,2,{"a":true}]\<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\\'"}}"#,
    ]),
    RecordedTranscript(.oob, pretty: false, #"{'execute': 'query-version', 'bogus': {}} {"execute": "query-commands", "a": -1, "id": {"arguments": -1}, "y": null}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#,
        #"{"id": {"arguments": -1}, "error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute":\,query-version","idt:n}{'execute':'query-version','id':'x\'y'}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\\'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'query'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-v'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"idt:n}{'execute':'query-version','id':'x\\'y'}\n'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"[1,2,{"a<FF>ltrue}{"execute":"nonexistent","arguments":{"a":[1,2.5e3,-0]},"id":"\u00e9"}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"a\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"id": "\u00E9", "error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"[1,2-{"a":tru}]{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-{'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'tru'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute""q{ery-version,"id":{"k":"v","k2":[]}}{"execute":"query-version","id":{"k":"v","k2":[]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '-v'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'k' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{'execute':'query-vlrfion,<0A>'id':'x\'y'}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''query-vlrfion,\n'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute":"query-ver\ion","id":1}{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid escape sequence in string"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"[{"x": true}] {"execute": "query-com]Eands"}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob"f:"quey-version","id":[1,"a":null}]}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, missing : in object pair"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.oob, pretty: false, #"[{u}]'<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'u'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''\n'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #" 'e9xecute':'query-version','d':'x\'y9}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''x\\'y9}\n'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{'execut<C3>':'query<FE>-version','id':'x\'y'}{"execute":"query-version","id":{"k":"v","k2":[]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''query\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "id": {"k": "v", "k2": []}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"arguments": [[{"\u00e9": {}, "bogus": {}}, 0, -1]]}<0A>{"exec-oob": "qmp_capabilities", "y": [{"control": {"bogus": {}}, "a": -922-372036854775809}, {"execute": {"y": {"exec-oob": -0.0}}}, [{}, {}]]} <0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execu+te": "query-commands"}<0A>{"exec-oob": "query-commands"} {"execute"u "nonexistent"} <0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'execu+te' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, missing : in object pair"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{"execu e<00>": "nonexistent"}<0A>{"executen": "qmp_capabilities"}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"execu e'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'executen' is unexpected"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{'execute': 'query-commands'} {"exec-oob": "query-commands", "execute": {}, "control": [true]}<0A><0A>"#, [
        #"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
    ]),
    RecordedTranscript(.oob, pretty: false, #"{"execut.": "nonex<80>stent"<80> "enable": 0}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute": "qmp_capabilities", "control": -92233<1F>72036854775809, "enable": 1e+300}{} <0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\u001F'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{"execute": {"id": null, "\u00e9": [], "control": {"enable": {"execute": {}, "control": {}}, "exec-oob": false}}, "id": ["nonexistent"], "arguments": [[]]} {'exec-oob': 'query-commands'} {'execute': 'nonexistent'}<0A><0A>"#, [
        #"{"id": ["nonexistent"], "error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{'exec-oob': 'nonexistent', 'id': {'bog<C3>us': -9223372036854775809, 'id': ['\\']}, 'enable': [[], -9223372036854775809, 0]}{'exec-oob': 'nonexistent', 'enable': {}}<0A>{"execute": "qmp_capabitlities"}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid UTF-8 sequence in string"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute":"nonexistent","a<00>rgumets":{"a":[1,2.5e3,-0]}',"id":"\u00e9"}{"execute":"query-version","id":{"k":"v","k2":[]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"a'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'a' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '',\"id\":\"\\u00e9\"}{\"execute\":\"query-version\",\"id\":{\"k\":\"v\",\"k2\":[]}}\n'"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{"exec-oob": "query-version", "<C3><A9>": [[]], "x": ["oob", "oob", "bogus"], "b.ogus": ["oob", "query-version"]}<1F><0A>{'execute': 'query-commands'}<0A>{"a": [{"\u00e9": []}, [{}], {"a": {"control": 1234567890,1234567890}}]}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member '\u00E9' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\u001F'"}}"#,
        #"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, key is not a string in object"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute":"query-vesion","id":{"k[":"v","k2":[]}}{"execute":"nonexistent","arguments":{"a":[1,2.5e3,-0]},"id":"\u00e9"}<0A>"#, [
        #"{"id": {"k[": "v", "k2": []}, "error": {"class": "CommandNotFound", "desc": "The command query-vesion has not been found"}}"#,
        #"{"id": "\u00E9", "error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"[1}<A9>,{"a"{true}]<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in list"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, missing : in object pair"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob":"query-versio[n","id":[1,{"a":null}]}{"execute":"nonexistent","arguments":{"a":[1,2.5e3,-0]},"id":"\u00e9"}<0A>"#, [
        #"{"id": [1, {"a": null}], "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"id": "\u00E9", "error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"euecute":"qmprca<01>pabilities","argument}s":{"enable":["oob"]}}{"execute":"nonexistent","arguments":{"a":[1,2.5e3,-0]},"id":"\u00e9"}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\"qmprca\u0001'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'enable' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"id": "\u00E9", "error": {"class": "CommandNotFound", "desc": "The command nonexistent has not been found"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"{"exencute": "query-commands", "control": [{"exec-oob": {"id": ["a"], "arguments": []}, "y": -0.0, "id": []}, {"x": {}, "id": null}], "bogus": 12345678901234567890}<0A>{'execut': 'no<FE>existent'}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'bogus' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''no\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"<80>{"execute":"quey-versi n,"id":{"k":"v","k2":[]}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\":[]}}\n'"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"<C3>{.<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '.'"}}"#,
    ]),
    RecordedTranscript(.none, pretty: false, #"} '<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, stray ''\n'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"id":0 ["oob"]}{"exec-oob": "nonexisten", "eEnable": {}}<0A><0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input member 'eEnable' is unexpected"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"execute": "query-version", "control": [], "id": true, "arguments": {"y": [[]]}} {} {"id": "query-version"} <0A>"#, [
        #"{"id": true, "error": {"class": "GenericError", "desc": "QMP input member 'control' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
        #"{"id": "query-version", "error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"exec-oob": "qmp_capabilities", "id": ["oob", "a"]} {'execute': ['oob', '<7F>'''], 'x': 0} <0A>"#, [
        #"{"id": ["oob", "a"], "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in list"}}"#,
    ]),
    RecordedTranscript(.neg, pretty: false, #"{"x": {"execute": {"control": 12345678901234567890, "id": ]}, "a": false}} {"execute": {}, "arguments": {"enable": alse}}<0A>"#, [
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#,
        #"{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'alse'"}}"#,
    ]),
]
