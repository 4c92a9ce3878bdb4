import NIOCore
import Testing
@testable import NBDWire

/// Feeds `bytes` one byte at a time and collects every message decoded along the way.
private func decodeByteByByte(_ bytes: [UInt8], decoder: inout NBDServerDecoder,
                              switchPhase: (NBDClientMessage, inout NBDServerDecoder) -> Void = { _, _ in }) throws -> [NBDClientMessage] {
    var messages: [NBDClientMessage] = []
    for byte in bytes {
        decoder.append(ByteBuffer(bytes: [byte]))
        while let message = try decoder.next() {
            messages.append(message)
            switchPhase(message, &decoder)
        }
    }
    return messages
}

@Suite struct NBDServerDecoderTests {
    @Test func clientFlagsThenOptionsByteByByte() throws {
        var wire = ByteBuffer()
        wire.writeNBDClientFlags([.fixedNewstyle, .noZeroes])
        wire.writeNBDOption(.structuredReply)
        var go = ByteBuffer()
        NBDExportInfoRequest(exportName: "disk", requestedInfo: [.blockSize]).encode(into: &go)
        wire.writeNBDOption(.go, data: go)

        var decoder = NBDServerDecoder()
        let messages = try decodeByteByByte(Array(wire.readableBytesView), decoder: &decoder) { message, decoder in
            if case .clientFlags = message { decoder.phase = .options }
        }
        #expect(messages == [
            .clientFlags([.fixedNewstyle, .noZeroes]),
            .option(.structuredReply, data: ByteBuffer()),
            .option(.go, data: go),
        ])
        #expect(decoder.bufferedBytes == 0)
    }

    @Test func optionHeaderLayout() throws {
        // IHAVEOPT, option 3 (LIST), length 2, two data bytes.
        let bytes: [UInt8] = [0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 3, 0, 0, 0, 2, 0xaa, 0xbb]
        var decoder = NBDServerDecoder(phase: .options)
        let messages = try decodeByteByByte(bytes, decoder: &decoder)
        #expect(messages == [.option(.list, data: ByteBuffer(bytes: [0xaa, 0xbb]))])
    }

    @Test func requestsWithAndWithoutPayload() throws {
        var wire = ByteBuffer()
        NBDRequest(flags: .fua, command: .write, cookie: 7, offset: 4096, length: 5).encode(into: &wire)
        wire.writeBytes([1, 2, 3, 4, 5])
        NBDRequest(command: .read, cookie: 8, offset: 0, length: 1 << 20).encode(into: &wire)
        NBDRequest(command: .disconnect, cookie: 9).encode(into: &wire)

        var decoder = NBDServerDecoder(phase: .transmission)
        let messages = try decodeByteByByte(Array(wire.readableBytesView), decoder: &decoder)
        #expect(messages == [
            .request(NBDRequest(flags: .fua, command: .write, cookie: 7, offset: 4096, length: 5), payload: ByteBuffer(bytes: [1, 2, 3, 4, 5])),
            .request(NBDRequest(command: .read, cookie: 8, offset: 0, length: 1 << 20), payload: nil),
            .request(NBDRequest(command: .disconnect, cookie: 9), payload: nil),
        ])
    }

    @Test func requestHeaderLayout() throws {
        let bytes: [UInt8] = [
            0x25, 0x60, 0x95, 0x13,             // magic
            0x00, 0x12,                         // flags NO_HOLE | FAST_ZERO
            0x00, 0x06,                         // WRITE_ZEROES
            1, 2, 3, 4, 5, 6, 7, 8,             // cookie
            0, 0, 0, 0, 0, 0, 0x10, 0,          // offset 4096
            0, 0, 0x02, 0,                      // length 512
        ]
        var decoder = NBDServerDecoder(phase: .transmission)
        decoder.append(ByteBuffer(bytes: bytes))
        #expect(try decoder.next() == .request(
            NBDRequest(flags: [.noHole, .fastZero], command: .writeZeroes, cookie: 0x0102_0304_0506_0708, offset: 4096, length: 512),
            payload: nil))
        #expect(try decoder.next() == nil)
    }

    @Test func largeWritePayloadSplitAcrossReads() throws {
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var wire = ByteBuffer()
        NBDRequest(command: .write, cookie: 1, offset: 0, length: UInt32(payload.count)).encode(into: &wire)
        wire.writeBytes(payload)
        NBDRequest(command: .flush, cookie: 2).encode(into: &wire)

        var decoder = NBDServerDecoder(phase: .transmission)
        var messages: [NBDClientMessage] = []
        while wire.readableBytes > 0 {
            decoder.append(wire.readSlice(length: min(65_536, wire.readableBytes))!)
            while let message = try decoder.next() { messages.append(message) }
        }
        #expect(messages.count == 2)
        guard case .request(let request, let received?) = messages.first else {
            Issue.record("expected a write with payload")
            return
        }
        #expect(request.length == UInt32(payload.count))
        #expect(Array(received.readableBytesView) == payload)
    }

    @Test func badMagicIsFatal() {
        var decoder = NBDServerDecoder(phase: .transmission)
        decoder.append(ByteBuffer(bytes: [0xde, 0xad, 0xbe, 0xef]))
        #expect(throws: NBDProtocolError.badRequestMagic(0xdead_beef)) { try decoder.next() }

        var options = NBDServerDecoder(phase: .options)
        options.append(ByteBuffer(bytes: [UInt8](repeating: 1, count: 8)))
        #expect(throws: NBDProtocolError.badOptionMagic(0x0101_0101_0101_0101)) { try options.next() }
    }

    @Test func oversizedWritePayloadIsFatalBeforeItArrives() {
        var wire = ByteBuffer()
        NBDRequest(command: .write, cookie: 1, offset: 0, length: UInt32(NBDLimits.maximumPayload + 1)).encode(into: &wire)
        var decoder = NBDServerDecoder(phase: .transmission)
        decoder.append(wire)
        #expect(throws: NBDProtocolError.payloadTooLarge(UInt32(NBDLimits.maximumPayload + 1))) { try decoder.next() }
    }

    @Test func oversizedReadIsAnOrdinaryRequest() throws {
        var wire = ByteBuffer()
        NBDRequest(command: .read, cookie: 1, offset: 0, length: UInt32(NBDLimits.maximumPayload + 1)).encode(into: &wire)
        var decoder = NBDServerDecoder(phase: .transmission)
        decoder.append(wire)
        #expect(try decoder.next() == .request(NBDRequest(command: .read, cookie: 1, offset: 0, length: UInt32(NBDLimits.maximumPayload + 1)), payload: nil))
    }

    @Test func optionLongerThanLimitIsFatal() {
        var wire = ByteBuffer()
        wire.writeMultipleIntegers(NBDMagic.option, NBDOption.go.rawValue, UInt32(100))
        var decoder = NBDServerDecoder(phase: .options, maximumOptionLength: 99)
        decoder.append(wire)
        #expect(throws: NBDProtocolError.optionTooLong(100)) { try decoder.next() }
    }

    /// An idle connection must not keep a large WRITE's storage alive through the decoder:
    /// only the payload handed out does, until the write is done.
    @Test func storageIsLetGoOnceEverythingIsDecoded() throws {
        var decoder = NBDServerDecoder(phase: .transmission)
        var wire = ByteBuffer()
        NBDRequest(command: .write, cookie: 1, offset: 0, length: 1 << 20).encode(into: &wire)
        wire.writeRepeatingByte(0x5A, count: 1 << 20)
        NBDRequest(command: .flush, cookie: 2).encode(into: &wire)
        decoder.append(wire.getSlice(at: 0, length: wire.readableBytes - 10)!)
        guard case .request(_, let payload?) = try decoder.next() else {
            Issue.record("no write")
            return
        }
        #expect(payload.readableBytes == 1 << 20)
        #expect(try decoder.next() == nil)
        #expect(decoder.holdsReceivedStorage, "half a FLUSH header waits")
        decoder.append(wire.getSlice(at: wire.readableBytes - 10, length: 10)!)
        guard case .request(let flush, nil) = try decoder.next() else {
            Issue.record("no flush")
            return
        }
        #expect(flush.command == .flush)
        #expect(!decoder.holdsReceivedStorage)
    }
}
