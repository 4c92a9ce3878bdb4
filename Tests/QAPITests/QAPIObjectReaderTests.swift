import JSON
import Testing

@testable import QAPI

/// Texts observed with qemu-storage-daemon 7.2 (QMP replies and `--blockdev`/`--nbd-server`
/// in both JSON and keyval form).
struct QAPIObjectReaderTests {
    // A small schema in the shape handlers will write, to exercise the API.
    enum Discard: String, QAPIEnum { case ignore, unmap }

    struct Cache: QAPIStruct, Equatable {
        var direct: Bool?
        var noFlush: Bool?
        init(direct: Bool?, noFlush: Bool?) {
            self.direct = direct
            self.noFlush = noFlush
        }
        init(members: inout QAPIObjectReader) throws(QAPIError) {
            direct = try members.optional("direct")
            noFlush = try members.optional("no-flush")
        }
    }

    /// BlockdevRef-like alternate: a node name or an inline definition.
    indirect enum Reference: QAPIDecodable, Equatable {
        case name(String)
        case definition(Node)
        init(qapi input: QAPIInput) throws(QAPIError) {
            switch input.value {
            case .string(let name): self = .name(name)
            case .object: self = .definition(try input.decode())
            default: throw input.invalidAlternate("BlockdevRef")
            }
        }
    }

    struct Node: QAPIStruct, Equatable {
        var driver: String
        var nodeName: String?
        var discard: Discard
        var cache: Cache?
        var readOnly: Bool
        var size: Int64?
        var file: Reference?
        init(members: inout QAPIObjectReader) throws(QAPIError) {
            driver = try members.requiredEnum("driver", values: ["file", "null-co", "raw"])
            nodeName = try members.optional("node-name")
            discard = try members.optional("discard", default: .ignore)
            cache = try members.optional("cache")
            readOnly = try members.optional("read-only", default: false)
            size = try members.optional("size")
            file = try members.optional("file")
        }
    }

    private func decodeJSON(_ object: JSONObject) throws(QAPIError) -> Node { try Node.decode(object, mode: .json) }
    private func decodeKeyval(_ text: String) throws -> Node {
        try Node.decode(KeyvalParser.parse(text, impliedKey: "driver"), mode: .keyval)
    }

    @Test func readsTypedMembersFromJSON() throws {
        let node = try decodeJSON([
            "driver": "raw", "node-name": "r0", "discard": "unmap", "cache": ["direct": true],
            "read-only": true, "size": 4096, "file": ["driver": "null-co"],
        ])
        #expect(node.driver == "raw")
        #expect(node.nodeName == "r0")
        #expect(node.discard == .unmap)
        #expect(node.cache == .some(Cache(direct: true, noFlush: nil)))
        #expect(node.readOnly)
        #expect(node.size == 4096)
        #expect(node.file?.definitionDriver == "null-co")
    }

    @Test func readsTypedMembersFromKeyval() throws {
        let node = try decodeKeyval("raw,node-name=r0,discard=unmap,cache.direct=on,read-only=yes,size=0x1000,file=f0")
        #expect(node.driver == "raw")
        #expect(node.discard == .unmap)
        #expect(node.cache?.direct == true)
        #expect(node.readOnly)
        #expect(node.size == 4096)
        #expect(node.file == .name("f0"))
    }

    @Test func defaultsApplyWhenAbsent() throws {
        let node = try decodeJSON(["driver": "file"])
        #expect(node.discard == .ignore)
        #expect(!node.readOnly)
        #expect(node.nodeName == nil && node.cache == nil && node.file == nil)
    }

    @Test func missingMember() {
        #expect(throws: QAPIError("Parameter 'driver' is missing")) { try decodeJSON(["node-name": "x"]) }
        #expect(throws: QAPIError("Parameter 'driver' is missing")) { try decodeKeyval("") }
        #expect(throws: QAPIError("Parameter 'file.driver' is missing")) {
            try decodeKeyval("driver=raw,node-name=r0,file.node-name=bogus")
        }
    }

    @Test func unexpectedMemberIsReportedAfterTheOthers() {
        #expect(throws: QAPIError("Parameter 'bogus' is unexpected")) { try decodeJSON(["driver": "file", "bogus": 1]) }
        #expect(throws: QAPIError("Parameter 'file.bogus' is unexpected")) {
            try decodeJSON(["driver": "raw", "file": ["driver": "null-co", "bogus": 1]])
        }
        #expect(throws: QAPIError("Parameter 'cache.bogus' is unexpected")) { try decodeKeyval("file,cache.bogus=1") }
        // A type error in a known member wins over an unexpected one.
        #expect(throws: QAPIError("Parameter 'size' expects integer")) { try decodeKeyval("file,bogus=1,size=1M") }
    }

    @Test func jsonTypeErrors() {
        #expect(throws: QAPIError("Invalid parameter type for 'node-name', expected: string")) {
            try decodeJSON(["driver": "file", "node-name": 5])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'node-name', expected: string")) {
            try decodeJSON(["driver": "file", "node-name": nil])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'read-only', expected: boolean")) {
            try decodeJSON(["driver": "file", "read-only": "on"])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'cache', expected: object")) {
            try decodeJSON(["driver": "file", "cache": "x"])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'driver', expected: string")) {
            try decodeJSON(["driver": 5])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'file.size', expected: integer")) {
            try decodeJSON(["driver": "raw", "file": ["driver": "null-co", "size": "x"]])
        }
    }

    @Test(arguments: [JSONValue.double(1.5), "1", .uint(18446744073709551615), .null, true])
    func jsonInt64Rejects(value: JSONValue) {
        #expect(throws: QAPIError("Invalid parameter type for 'size', expected: integer")) {
            try decodeJSON(["driver": "null-co", "size": value])
        }
    }

    @Test func enumErrorsUseTheMemberOwnName() {
        #expect(throws: QAPIError("Parameter 'driver' does not accept value 'bogus'")) { try decodeKeyval("bogus") }
        #expect(throws: QAPIError("Parameter 'driver' does not accept value 'bogus'")) {
            try decodeKeyval("raw,file.driver=bogus")
        }
        #expect(throws: QAPIError("Parameter 'discard' does not accept value 'Unmap'")) {
            try decodeJSON(["driver": "file", "discard": "Unmap"])
        }
    }

    @Test func alternates() throws {
        #expect(throws: QAPIError("Invalid parameter type for 'file', expected: BlockdevRef")) {
            try decodeJSON(["driver": "raw", "file": 5])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'file', expected: BlockdevRef")) {
            try decodeJSON(["driver": "raw", "file": nil])
        }
        #expect(try decodeKeyval("raw,file.driver=file").file?.definitionDriver == "file")
    }

    @Test func keyvalBooleans() throws {
        for (text, expected) in [("on", true), ("yes", true), ("true", true), ("y", true),
                                 ("off", false), ("no", false), ("false", false), ("n", false)] {
            #expect(try decodeKeyval("file,read-only=\(text)").readOnly == expected)
        }
        for text in ["ON", "Yes", "", "maybe", "1"] {
            #expect(throws: QAPIError("Parameter 'read-only' expects 'on' or 'off'")) {
                try decodeKeyval("file,read-only=\(text)")
            }
        }
        #expect(throws: QAPIError("Parameter 'cache.direct' expects 'on' or 'off'")) {
            try decodeKeyval("file,cache.direct=maybe")
        }
    }

    @Test func keyvalIntegers() {
        for text in ["1M", "", "08", "0x", "99999999999999999999", "1.5"] {
            #expect(throws: QAPIError("Parameter 'size' expects integer")) { try decodeKeyval("file,size=\(text)") }
        }
        #expect(throws: QAPIError("Parameter 'file.size' expects integer")) {
            try decodeKeyval("raw,file.driver=null-co,file.size=x")
        }
    }

    @Test func keyvalNestedValueWhereScalarExpected() {
        #expect(throws: QAPIError("Parameters 'node-name.*' are unexpected")) { try decodeKeyval("file,node-name.x=1") }
        #expect(throws: QAPIError("Invalid parameter type for 'cache', expected: object")) { try decodeKeyval("file,cache=on") }
    }

    @Test func uint64InJSONMode() throws {
        func read(_ value: JSONValue) throws(QAPIError) -> UInt64 {
            var reader = QAPIObjectReader(["write-threshold": value], mode: .json)
            return try reader.required("write-threshold")
        }
        #expect(try read(5) == 5)
        #expect(try read(.uint(UInt64.max)) == UInt64.max)
        #expect(try read(-1) == UInt64.max)  // QEMU accepts negatives for compatibility.
        for bad: JSONValue in [1.5, "1", nil, false, .double(18446744073709551616.0)] {
            #expect(throws: QAPIError("Parameter 'write-threshold' expects uint64")) { try read(bad) }
        }
    }

    @Test func uint64InKeyvalMode() throws {
        var reader = QAPIObjectReader(["a": "-1", "b": "0x10", "c": "x"], mode: .keyval)
        #expect(try reader.required("a", as: UInt64.self) == UInt64.max)
        #expect(try reader.required("b", as: UInt64.self) == 16)
        #expect(throws: QAPIError("Parameter 'c' expects integer")) { try reader.required("c", as: UInt64.self) }
    }

    @Test func narrowIntegers() throws {
        func read<T: QAPIDecodable>(_ value: JSONValue, as type: T.Type, mode: QAPIInputMode = .json) throws(QAPIError) -> T {
            var reader = QAPIObjectReader(["addr": ["max-connections": value]], mode: mode)
            var nested = try reader.input("addr").object()
            return try nested.required("max-connections", as: T.self)
        }
        #expect(try read(4294967295, as: UInt32.self) == UInt32.max)
        #expect(try read("4294967295", as: UInt32.self, mode: .keyval) == UInt32.max)
        // The narrow-type texts use the member's own name, not its path.
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint32_t")) { try read(-1, as: UInt32.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint32_t")) { try read(4294967296, as: UInt32.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint32_t")) {
            try read("-1", as: UInt32.self, mode: .keyval)
        }
        #expect(throws: QAPIError("Parameter 'addr.max-connections' expects uint64")) { try read(1.5, as: UInt32.self) }
        #expect(throws: QAPIError("Parameter 'addr.max-connections' expects integer")) {
            try read("1x", as: UInt32.self, mode: .keyval)
        }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint16_t")) { try read(65536, as: UInt16.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint8_t")) { try read(256, as: UInt8.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects int32_t")) { try read(2147483648, as: Int32.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects int16_t")) { try read(-32769, as: Int16.self) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects int8_t")) { try read(128, as: Int8.self) }
        #expect(throws: QAPIError("Invalid parameter type for 'addr.max-connections', expected: integer")) {
            try read("1", as: Int32.self)
        }
        #expect(try read(-128, as: Int8.self) == -128)
    }

    @Test func listsNameTheirElementsByMode() throws {
        var json = QAPIObjectReader(["bitmaps": ["a", 5]], mode: .json)
        #expect(throws: QAPIError("Invalid parameter type for 'bitmaps[1]', expected: string")) {
            try json.required("bitmaps", as: [String].self)
        }
        var keyval = QAPIObjectReader(try KeyvalParser.parse("bitmaps.0=a,bitmaps.1.x=1"), mode: .keyval)
        #expect(throws: QAPIError("Parameters 'bitmaps.1.*' are unexpected")) {
            try keyval.required("bitmaps", as: [String].self)
        }
        var good = QAPIObjectReader(try KeyvalParser.parse("bitmaps.0=a,bitmaps.1=b"), mode: .keyval)
        #expect(try good.required("bitmaps", as: [String].self) == ["a", "b"])
        var notList = QAPIObjectReader(["bitmaps": "x"], mode: .keyval)
        #expect(throws: QAPIError("Invalid parameter type for 'bitmaps', expected: array")) {
            try notList.required("bitmaps", as: [String].self)
        }
        // Alternates inside lists have no own name: QEMU says 'null'.
        var alternates = QAPIObjectReader(["files": [5]], mode: .json)
        #expect(throws: QAPIError("Invalid parameter type for 'null', expected: BlockdevRef")) {
            try alternates.required("files", as: [Reference].self)
        }
        var nested = QAPIObjectReader(["files": [["driver": "file", "x": 1]]], mode: .json)
        #expect(throws: QAPIError("Parameter 'files[0].x' is unexpected")) {
            try nested.required("files", as: [Reference].self)
        }
    }

    @Test func finishReportsTheFirstUnreadMemberInInputOrder() throws {
        var reader = QAPIObjectReader(["a": 1, "z": 2, "b": 3], mode: .json)
        _ = try reader.required("b", as: Int64.self)
        #expect(throws: QAPIError("Parameter 'a' is unexpected")) { try reader.finish() }
        _ = try reader.required("a", as: Int64.self)
        #expect(throws: QAPIError("Parameter 'z' is unexpected")) { try reader.finish() }
        _ = reader.optionalInput("z")
        try reader.finish()
    }

    @Test func anyValuePassesThrough() throws {
        var reader = QAPIObjectReader(["value": ["x": [1, nil]]], mode: .json)
        #expect(try reader.required("value", as: JSONValue.self) == ["x": [1, nil]])
        try reader.finish()
    }

    @Test func containsDoesNotConsume() {
        let reader = QAPIObjectReader(["a": 1], mode: .json)
        #expect(reader.contains("a"))
        #expect(!reader.contains("b"))
        #expect(throws: QAPIError("Parameter 'a' is unexpected")) { try reader.finish() }
    }
}

extension QAPIObjectReaderTests.Reference {
    var definitionDriver: String? {
        if case .definition(let node) = self { node.driver } else { nil }
    }
}
