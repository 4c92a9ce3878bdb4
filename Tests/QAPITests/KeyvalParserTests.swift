import JSON
import Testing

@testable import QAPI

/// Expected texts were observed with qemu-storage-daemon 7.2 (`--blockdev <text>`).
struct KeyvalParserTests {
    private func expectError(_ text: String, impliedKey: String? = "driver", _ message: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: QAPIError(message), sourceLocation: sourceLocation) {
            try KeyvalParser.parse(text, impliedKey: impliedKey)
        }
    }

    @Test func keyValuePairsBecomeStrings() throws {
        let object = try KeyvalParser.parse("driver=file,node-name=f0,size=12")
        #expect(object == ["driver": "file", "node-name": "f0", "size": "12"])
        #expect(object.keys == ["driver", "node-name", "size"])
    }

    @Test func emptyInputIsEmptyObject() throws {
        #expect(try KeyvalParser.parse("", impliedKey: "driver").isEmpty)
    }

    @Test func trailingCommaIsAllowed() throws {
        #expect(try KeyvalParser.parse("a=1,") == ["a": "1"])
    }

    @Test func doubledCommaIsALiteralComma() throws {
        #expect(try KeyvalParser.parse("filename=/tmp/we,,ird.raw,x=1") == ["filename": "/tmp/we,ird.raw", "x": "1"])
        #expect(try KeyvalParser.parse("node-name=n0,,x=1") == ["node-name": "n0,x=1"])
        #expect(try KeyvalParser.parse("node-name=n0,,") == ["node-name": "n0,"])
        #expect(try KeyvalParser.parse("node-name=n0,,,") == ["node-name": "n0,"])
        #expect(try KeyvalParser.parse("x=a=b") == ["x": "a=b"])
        #expect(try KeyvalParser.parse("x=") == ["x": ""])
    }

    @Test func undoubledCommaInValueStartsANewKey() {
        expectError("filename=/tmp/we,ird.raw", impliedKey: nil, "Expected '=' after parameter 'ird.raw'")
        expectError("driver=null-co,node-name=n0,foo", "Expected '=' after parameter 'foo'")
        expectError("node-name=n0,null-co", "Expected '=' after parameter 'null-co'")
        expectError("helpx", impliedKey: nil, "Expected '=' after parameter 'helpx'")
    }

    @Test func impliedKey() throws {
        #expect(try KeyvalParser.parse("null-co,node-name=n0", impliedKey: "driver") == ["driver": "null-co", "node-name": "n0"])
        #expect(try KeyvalParser.parse("null-co,", impliedKey: "driver") == ["driver": "null-co"])
        #expect(try KeyvalParser.parse("m0", impliedKey: "chardev") == ["chardev": "m0"])
        // A first item with '=' is a normal key.
        #expect(try KeyvalParser.parse("null-co=x", impliedKey: "driver") == ["null-co": "x"])
        // The implied value has no ',,' escape: the second comma starts an empty key.
        expectError("null-co,,x", "Invalid parameter ''")
        // A later explicit key wins over the implied one.
        #expect(try KeyvalParser.parse("null-co,driver=raw", impliedKey: "driver") == ["driver": "raw"])
    }

    @Test func withoutImpliedKeyABareItemNeedsEquals() {
        expectError("m0", impliedKey: nil, "Expected '=' after parameter 'm0'")
    }

    @Test func duplicateKeysLastWins() throws {
        let object = try KeyvalParser.parse("node-name=f0,driver=file,node-name=f1")
        #expect(object == ["node-name": "f1", "driver": "file"])
        #expect(object.keys == ["node-name", "driver"])
    }

    @Test func dottedKeysBuildObjects() throws {
        let object = try KeyvalParser.parse("driver=raw,file.driver=file,file.filename=/x,cache.direct=on,file.aio.x=1")
        #expect(object == [
            "driver": "raw",
            "file": ["driver": "file", "filename": "/x", "aio": ["x": "1"]],
            "cache": ["direct": "on"],
        ])
    }

    @Test func digitFragmentsBuildArrays() throws {
        #expect(try KeyvalParser.parse("bitmaps.0=b1,bitmaps.1=b2") == ["bitmaps": ["b1", "b2"]])
        #expect(try KeyvalParser.parse("bitmaps.1=b2,bitmaps.0=b1") == ["bitmaps": ["b1", "b2"]])
        #expect(try KeyvalParser.parse("a.0.node=n,a.0.name=b,a.1=x") == ["a": [["node": "n", "name": "b"], "x"]])
        #expect(try KeyvalParser.parse("a.b.0.0=x") == ["a": ["b": [["x"]]]])
        // Different spellings of one index: the later one wins.
        #expect(try KeyvalParser.parse("a.00=x,a.0=y") == ["a": ["y"]])
    }

    @Test func arrayIndexesMustBeContiguousFromZero() {
        expectError("a.1=x", "Parameter 'a.0' missing")
        expectError("a.b.0=y,a.b.2=x", "Parameter 'a.b.1' missing")
        expectError("a.0=x,a.5=y,a.1=z", "Parameter 'a.2' missing")
        expectError("a.0=x,a.99999999999999999=y", "Parameter 'a.1' missing")
    }

    @Test func inconsistentUse() {
        expectError("a.0=x,a.b=y", "Parameters 'a.*' used inconsistently")
        expectError("a=x,a.b=y", "Parameters 'a.*' used inconsistently")
        expectError("a.b=y,a=x", "Parameters 'a.*' used inconsistently")
        expectError("a.b.0=y,a.b.x=x", "Parameters 'a.b.*' used inconsistently")
        expectError("a.b=1,a.b.c=2", "Parameters 'a.b.*' used inconsistently")
        expectError("file=f0,file.driver=file", "Parameters 'file.*' used inconsistently")
    }

    @Test func inconsistencyIsFoundBeforeLaterFragmentsAreChecked() {
        expectError("a=x,a.b.1c=y", "Parameters 'a.*' used inconsistently")
    }

    @Test func invalidKeys() {
        expectError("1bad=3", "Invalid parameter '1bad'")
        expectError("driver=null-co,a.1b=y", "Invalid parameter 'a.1b'")
        expectError("0=y", "Invalid parameter '0'")
        expectError("a..b=y", "Invalid parameter 'a..b'")
        expectError("a.=y", "Invalid parameter 'a.'")
        expectError("=y", "Invalid parameter ''")
        expectError(",a=b", "Invalid parameter ''")
        expectError(",", "Invalid parameter ''")
        expectError("_x=1", "Invalid parameter '_x'")
        expectError("a b=1", "Invalid parameter 'a b'")
    }

    @Test func validKeyShapes() throws {
        #expect(try KeyvalParser.parse("x_y-z9=1,__com.redhat_x=2,A=3") == ["x_y-z9": "1", "__com.redhat_x": "2", "A": "3"])
    }

    @Test func fragmentLengthLimit() throws {
        let long128 = String(repeating: "a", count: 128)
        let long127 = String(repeating: "a", count: 127)
        expectError("\(long128)=y", "Parameter '\(long128)' is too long")
        expectError("x.\(long128)=y", "Parameter fragment '\(long128)' is too long")
        expectError("x.\(long128).b=y", "Parameter fragment '\(long128)' is too long")
        #expect(try KeyvalParser.parse("x.\(long127)=y") == ["x": .object([long127: "y"])])
    }

    @Test func helpRequests() throws {
        expectError("help", "Help is not available for this option")
        expectError("?", "Help is not available for this option")
        expectError("driver=null-co,node-name=n0,help", "Help is not available for this option")
        #expect(try KeyvalParser.parseAllowingHelp("iothread,help", impliedKey: "qom-type").helpRequested)
        #expect(try KeyvalParser.parseAllowingHelp("help", impliedKey: "qom-type").helpRequested)
        #expect(try !KeyvalParser.parseAllowingHelp("help=1").helpRequested)
        #expect(try KeyvalParser.parseAllowingHelp("help=1").object == ["help": "1"])
    }

    @Test func syntaxErrorsWinOverHelp() {
        expectError("help,1bad=2", "Invalid parameter '1bad'")
    }

    @Test func listIndexCapsLikeQEMU() {
        #expect(KeyvalParser.listIndex("007") == 7)
        #expect(KeyvalParser.listIndex("99999999999999999999") == Int(Int32.max))
        #expect(KeyvalParser.listIndex("1a") == nil)
        #expect(KeyvalParser.listIndex("") == nil)
    }
}
