import JSON
import Testing

@testable import QAPI

/// Texts observed with qemu-storage-daemon 7.2 (`--monitor`).
struct MonitorOptionsTests {
    private func commandLine(_ text: String) throws -> MonitorOptions {
        try MonitorOptions.decode(KeyvalParser.parse(text, impliedKey: "chardev"), mode: .keyval)
    }

    @Test func impliedChardev() throws {
        #expect(try commandLine("m0") == MonitorOptions(chardev: "m0"))
        #expect(try commandLine("chardev=m0,mode=control,pretty=on,id=x") == MonitorOptions(chardev: "m0", id: "x", pretty: true))
        #expect(try commandLine("m0,mode=readline").mode == .readline)
    }

    @Test func errorsInSchemaOrder() {
        #expect(throws: QAPIError("Parameter 'mode' does not accept value 'bogus'")) { try commandLine("mode=bogus,pretty=x") }
        #expect(throws: QAPIError("Parameter 'pretty' expects 'on' or 'off'")) { try commandLine("pretty=x") }
        #expect(throws: QAPIError("Parameter 'chardev' is missing")) { try commandLine("mode=readline") }
        #expect(throws: QAPIError("Parameter 'bogus' is unexpected")) { try commandLine("m0,bogus=1") }
        #expect(throws: QAPIError("Invalid parameter type for 'id', expected: string")) {
            try MonitorOptions.decode(["chardev": "m0", "id": 5], mode: .json)
        }
    }

    @Test func onlyQMPText() {
        #expect(MonitorOptions.onlyQMPSupported.description == "Only QMP is supported")
    }
}
