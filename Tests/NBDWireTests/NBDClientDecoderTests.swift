import NIOCore
import Testing
@testable import NBDWire

@Suite struct NBDClientDecoderTests {
    private func decodeAll(_ buffer: ByteBuffer, decoder: inout NBDClientDecoder) throws -> [NBDServerMessage] {
        var messages: [NBDServerMessage] = []
        for byte in buffer.readableBytesView {
            decoder.append(ByteBuffer(bytes: [byte]))
            while let message = try decoder.next() { messages.append(message) }
        }
        return messages
    }

    @Test func greetingBytes() throws {
        var wire = ByteBuffer()
        wire.writeNBDGreeting(flags: [.fixedNewstyle, .noZeroes])
        #expect(Array(wire.readableBytesView) == Array("NBDMAGICIHAVEOPT".utf8) + [0, 3])
        var decoder = NBDClientDecoder()
        #expect(try decodeAll(wire, decoder: &decoder) == [.greeting([.fixedNewstyle, .noZeroes])])
        #expect(decoder.phase == .options)
    }

    @Test func optionRepliesRoundTrip() throws {
        let replies: [NBDOptionReply] = [
            .server(name: "disk", description: "a disk"),
            .info(.name("disk")),
            .info(.description("a disk")),
            .info(.blockSize(minimum: 1, preferred: 4096, maximum: 33_554_432)),
            .info(.export(size: 8 << 20, flags: [.hasFlags, .sendFlush])),
            .metaContext(id: 0, name: "base:allocation"),
            .error(.errorUnknown, message: "export 'x' not present"),
            .ack,
        ]
        var wire = ByteBuffer()
        for reply in replies { reply.encode(option: .go, into: &wire) }
        var decoder = NBDClientDecoder(phase: .options)
        #expect(try decodeAll(wire, decoder: &decoder) == replies.map { .optionReply(.go, $0) })
    }

    @Test func optionReplyLayout() {
        var wire = ByteBuffer()
        NBDOptionReply.info(.blockSize(minimum: 1, preferred: 4096, maximum: 0x0200_0000)).encode(option: .go, into: &wire)
        #expect(Array(wire.readableBytesView) == [
            0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9,  // reply magic
            0, 0, 0, 7,                                      // GO
            0, 0, 0, 3,                                      // NBD_REP_INFO
            0, 0, 0, 14,                                     // length
            0, 3,                                            // NBD_INFO_BLOCK_SIZE
            0, 0, 0, 1, 0, 0, 0x10, 0, 2, 0, 0, 0,
        ])
    }

    @Test func exportNameReplyWithAndWithoutZeroes() throws {
        for noZeroes in [true, false] {
            var wire = ByteBuffer()
            wire.writeNBDExportNameReply(size: 1024, flags: [.hasFlags, .readOnly], noZeroes: noZeroes)
            #expect(wire.readableBytes == (noZeroes ? 10 : 134))
            var decoder = NBDClientDecoder(phase: .exportNameReply(noZeroes: noZeroes))
            #expect(try decodeAll(wire, decoder: &decoder) == [.exportNameReply(size: 1024, flags: [.hasFlags, .readOnly])])
            #expect(decoder.phase == .transmission)
        }
    }

    @Test func simpleRepliesWithReadData() throws {
        var wire = ByteBuffer()
        wire.writeNBDSimpleReplyHeader(error: nil, cookie: 1)
        wire.writeBytes([9, 8, 7])
        wire.writeNBDSimpleReplyHeader(error: .invalid, cookie: 2)
        wire.writeNBDSimpleReplyHeader(error: nil, cookie: 3)
        #expect(wire.getBytes(at: 19, length: 16) == [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 2])

        var decoder = NBDClientDecoder(phase: .transmission)
        decoder.expectSimpleReadReply(cookie: 1, length: 3)
        decoder.expectSimpleReadReply(cookie: 2, length: 100)
        #expect(try decodeAll(wire, decoder: &decoder) == [
            .simpleReply(error: nil, cookie: 1, data: ByteBuffer(bytes: [9, 8, 7])),
            .simpleReply(error: .invalid, cookie: 2, data: nil),
            .simpleReply(error: nil, cookie: 3, data: nil),
        ])
    }

    @Test func structuredChunksRoundTrip() throws {
        let chunks = [
            NBDReplyChunk(flags: [], cookie: 5, content: .offsetData(offset: 512, data: ByteBuffer(bytes: [1, 2, 3]))),
            NBDReplyChunk(flags: [], cookie: 5, content: .offsetHole(offset: 515, length: 4096)),
            NBDReplyChunk(cookie: 5, content: .none),
            NBDReplyChunk(cookie: 6, content: .blockStatus(contextID: 0, extents: [
                NBDBlockStatusDescriptor(length: 65536, flags: 0),
                NBDBlockStatusDescriptor(length: 4096, flags: NBDBlockStatusDescriptor.hole | NBDBlockStatusDescriptor.zero),
            ])),
            NBDReplyChunk(cookie: 7, content: .error(.invalid, message: "operation past EOF")),
            NBDReplyChunk(cookie: 8, content: .errorOffset(.ioError, message: "bad sector", offset: 1024)),
        ]
        var wire = ByteBuffer()
        for chunk in chunks { chunk.encode(into: &wire) }
        var decoder = NBDClientDecoder(phase: .transmission)
        #expect(try decodeAll(wire, decoder: &decoder) == chunks.map { .chunk($0) })
    }

    @Test func errorChunkLayout() {
        var wire = ByteBuffer()
        NBDReplyChunk(cookie: 1, content: .error(.noSpace, message: "ab")).encode(into: &wire)
        #expect(Array(wire.readableBytesView) == [
            0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 0x01,  // magic, DONE, ERROR
            0, 0, 0, 0, 0, 0, 0, 1,                    // cookie
            0, 0, 0, 8,                                // length
            0, 0, 0, 28, 0, 2, 0x61, 0x62,             // ENOSPC, "ab"
        ])
    }

    @Test func malformedChunkIsFatal() {
        var wire = ByteBuffer()
        wire.writeNBDChunkHeader(flags: .done, type: .offsetHole, cookie: 1, length: 4)
        wire.writeInteger(UInt32(0))
        var decoder = NBDClientDecoder(phase: .transmission)
        decoder.append(wire)
        #expect(throws: NBDProtocolError.self) { try decoder.next() }
    }
}
