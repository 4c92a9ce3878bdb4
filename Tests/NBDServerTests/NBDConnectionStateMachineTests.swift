import NBDWire
import NIOCore
import Testing
@testable import NBDServer

/// Decodes the option replies an action carries.
private func replies(_ buffer: ByteBuffer) throws -> [NBDOptionReply] {
    var decoder = NBDClientDecoder(phase: .options)
    decoder.append(buffer)
    var result: [NBDOptionReply] = []
    while let message = try decoder.next() {
        guard case .optionReply(_, let reply) = message else { Issue.record("not an option reply"); break }
        result.append(reply)
    }
    return result
}

private func data(_ write: (inout ByteBuffer) -> Void) -> ByteBuffer {
    var buffer = ByteBuffer()
    write(&buffer)
    return buffer
}

@Suite struct NBDConnectionStateMachineTests {
    let registry = NBDExportRegistry()
    let export: NBDExport

    init() throws {
        export = try makeExport(id: "e0", name: "disk", description: "test disk", size: 8 << 20).0
        try registry.add(export)
    }

    private func negotiating(flags: NBDClientFlags = [.fixedNewstyle, .noZeroes]) -> NBDConnectionStateMachine {
        var machine = NBDConnectionStateMachine(registry: registry)
        #expect(machine.clientFlagsReceived(flags) == nil)
        return machine
    }

    private func expectReply(_ action: NBDConnectionStateMachine.OptionAction, _ expected: [NBDOptionReply],
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard case .reply(let buffer) = action else {
            Issue.record("expected replies, got \(action)", sourceLocation: sourceLocation)
            return
        }
        #expect(try replies(buffer) == expected, sourceLocation: sourceLocation)
    }

    @Test func unknownClientFlagsClose() {
        var machine = NBDConnectionStateMachine(registry: registry)
        #expect(machine.clientFlagsReceived(NBDClientFlags(rawValue: 0x13)) == "Unknown client flags 0x10 received")
    }

    @Test func qsdOptionErrorMessages() throws {
        var machine = negotiating()
        try expectReply(machine.optionReceived(.list, data: ByteBuffer(bytes: [0])),
                        [.error(.errorInvalid, message: "option 'list' has unexpected length")])
        try expectReply(machine.optionReceived(.setMetaContext, data: data { NBDMetaContextRequest(exportName: "disk", queries: []).encode(into: &$0) }),
                        [.error(.errorInvalid, message: "request option 'set meta context' when structured reply is not negotiated")])
        try expectReply(machine.optionReceived(.structuredReply, data: ByteBuffer()), [.ack])
        try expectReply(machine.optionReceived(.structuredReply, data: ByteBuffer()),
                        [.error(.errorInvalid, message: "structured reply already negotiated")])
        try expectReply(machine.optionReceived(.startTLS, data: ByteBuffer()), [.error(.errorPolicy, message: "TLS not configured")])
        try expectReply(machine.optionReceived(.go, data: data { NBDExportInfoRequest(exportName: "nosuch").encode(into: &$0) }),
                        [.error(.errorUnknown, message: "export 'nosuch' not present")])
        try expectReply(machine.optionReceived(.go, data: ByteBuffer(bytes: [0, 0, 0, 9, 0x61])),
                        [.error(.errorInvalid, message: "Inconsistent lengths in option go")])
        try expectReply(machine.optionReceived(NBDOption(rawValue: 99), data: ByteBuffer(bytes: [1, 2])),
                        [.error(.errorUnsupported, message: "Unsupported option 99 (<unknown>)")])
        try expectReply(machine.optionReceived(.extendedHeaders, data: ByteBuffer()),
                        [.error(.errorUnsupported, message: "Unsupported option 11 (<unknown>)")])
    }

    @Test func defaultExportIsUnknownUnlessNamedEmpty() throws {
        var machine = negotiating()
        try expectReply(machine.optionReceived(.info, data: data { NBDExportInfoRequest(exportName: "").encode(into: &$0) }),
                        [.error(.errorUnknown, message: "export '' not present")])
    }

    @Test func listAnswersEveryExport() throws {
        try registry.add(makeExport(id: "e1", name: "second").0)
        var machine = negotiating()
        try expectReply(machine.optionReceived(.list, data: ByteBuffer()), [
            .server(name: "disk", description: "test disk"),
            .server(name: "second", description: ""),
            .ack,
        ])
    }

    @Test func infoRepliesLikeQSD() throws {
        var machine = negotiating()
        try expectReply(machine.optionReceived(.info, data: data { NBDExportInfoRequest(exportName: "disk", requestedInfo: [.name, .blockSize]).encode(into: &$0) }), [
            .info(.name("disk")),
            .info(.description("test disk")),
            .info(.blockSize(minimum: 1, preferred: 4096, maximum: 33_554_432)),
            .info(.export(size: 8 << 20, flags: NBDTransmissionFlags(rawValue: 0x0d6d))),
            .ack,
        ])
    }

    @Test func goStartsTransmissionWithStructuredFlags() throws {
        var machine = negotiating()
        _ = machine.optionReceived(.structuredReply, data: ByteBuffer())
        try expectReply(machine.optionReceived(.setMetaContext, data: data {
            NBDMetaContextRequest(exportName: "disk", queries: ["base:allocation", "qemu:dirty-bitmap:x"]).encode(into: &$0)
        }), [.metaContext(id: 0, name: "base:allocation"), .ack])
        let action = machine.optionReceived(.go, data: data { NBDExportInfoRequest(exportName: "disk", requestedInfo: [.blockSize]).encode(into: &$0) })
        guard case .startTransmission(let buffer, let session) = action else {
            Issue.record("expected transmission, got \(action)")
            return
        }
        #expect(try replies(buffer) == [
            .info(.description("test disk")),
            .info(.blockSize(minimum: 1, preferred: 4096, maximum: 33_554_432)),
            .info(.export(size: 8 << 20, flags: NBDTransmissionFlags(rawValue: 0x0ded))),
            .ack,
        ])
        #expect(session.export === export)
        #expect(session.structuredReplies)
        #expect(session.baseAllocationSelected)
    }

    @Test func metaContextForAnotherExportDoesNotCarryOver() throws {
        try registry.add(makeExport(id: "e1", name: "other").0)
        var machine = negotiating()
        _ = machine.optionReceived(.structuredReply, data: ByteBuffer())
        _ = machine.optionReceived(.setMetaContext, data: data { NBDMetaContextRequest(exportName: "other", queries: ["base:allocation"]).encode(into: &$0) })
        guard case .startTransmission(_, let session) = machine.optionReceived(.go, data: data { NBDExportInfoRequest(exportName: "disk").encode(into: &$0) }) else {
            Issue.record("expected transmission")
            return
        }
        #expect(!session.baseAllocationSelected)
    }

    @Test func listMetaContextWithoutQueriesListsAll() throws {
        var machine = negotiating()
        try expectReply(machine.optionReceived(.listMetaContext, data: data { NBDMetaContextRequest(exportName: "disk", queries: []).encode(into: &$0) }),
                        [.metaContext(id: 0, name: "base:allocation"), .ack])
        try expectReply(machine.optionReceived(.listMetaContext, data: data { NBDMetaContextRequest(exportName: "disk", queries: ["base:"]).encode(into: &$0) }),
                        [.metaContext(id: 0, name: "base:allocation"), .ack])
        try expectReply(machine.optionReceived(.listMetaContext, data: data { NBDMetaContextRequest(exportName: "disk", queries: ["qemu:"]).encode(into: &$0) }),
                        [.ack])
    }

    @Test func readOnlyExportFlags() throws {
        try registry.add(makeExport(id: "ro", name: "ro", writable: false).0)
        var machine = negotiating()
        _ = machine.optionReceived(.structuredReply, data: ByteBuffer())
        try expectReply(machine.optionReceived(.info, data: data { NBDExportInfoRequest(exportName: "ro").encode(into: &$0) }), [
            .info(.blockSize(minimum: 1, preferred: 4096, maximum: 33_554_432)),
            .info(.export(size: 1 << 20, flags: NBDTransmissionFlags(rawValue: 0x058f))),
            .ack,
        ])
    }

    @Test func alignedExportNeedsBlockSizeForInfo() throws {
        try registry.add(makeExport(id: "al", name: "aligned", alignment: 512).0)
        var machine = negotiating()
        try expectReply(machine.optionReceived(.info, data: data { NBDExportInfoRequest(exportName: "aligned").encode(into: &$0) }), [
            .info(.blockSize(minimum: 512, preferred: 4096, maximum: 33_554_432)),
            .info(.export(size: 1 << 20, flags: NBDTransmissionFlags(rawValue: 0x0d6d))),
            .error(.errorBlockSizeRequired, message: "request NBD_INFO_BLOCK_SIZE to use this export"),
        ])
    }

    @Test func exportNameOption() throws {
        var machine = negotiating(flags: [.fixedNewstyle])
        guard case .startTransmission(var reply, _) = machine.optionReceived(.exportName, data: ByteBuffer(string: "disk")) else {
            Issue.record("expected transmission")
            return
        }
        #expect(reply.readableBytes == 134)
        #expect(reply.readMultipleIntegers(as: (UInt64, UInt16).self)! == (8 << 20, 0x0d6d))

        var unknown = negotiating()
        guard case .close = unknown.optionReceived(.exportName, data: ByteBuffer(string: "nosuch")) else {
            Issue.record("unknown export must close")
            return
        }
    }

    @Test func abortAcksThenCloses() throws {
        var machine = negotiating()
        guard case .replyAndClose(let buffer) = machine.optionReceived(.abort, data: ByteBuffer()) else {
            Issue.record("expected replyAndClose")
            return
        }
        #expect(try replies(buffer) == [.ack])
    }

    @Test func oldNewstyleClientsMayOnlyAskForAnExport() {
        var machine = negotiating(flags: [])
        guard case .close = machine.optionReceived(.list, data: ByteBuffer()) else {
            Issue.record("non-fixed newstyle client must be dropped")
            return
        }
    }
}
