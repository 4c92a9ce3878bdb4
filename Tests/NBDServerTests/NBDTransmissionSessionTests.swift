import BlockCore
import NBDWire
import NIOCore
import Testing
@testable import NBDServer

private func decodeReply(_ buffer: ByteBuffer, readLength: Int? = nil, cookie: UInt64 = 1) throws -> [NBDServerMessage] {
    var decoder = NBDClientDecoder(phase: .transmission)
    if let readLength { decoder.expectSimpleReadReply(cookie: cookie, length: readLength) }
    decoder.append(buffer)
    var messages: [NBDServerMessage] = []
    while let message = try decoder.next() { messages.append(message) }
    return messages
}

@Suite struct NBDTransmissionSessionTests {
    let export: NBDExport
    let driver: MemoryBlockDriver
    let structured: NBDTransmissionSession
    let simple: NBDTransmissionSession

    init() throws {
        (export, driver) = try makeExport(size: 1 << 20)
        structured = NBDTransmissionSession(export: export, structuredReplies: true, baseAllocationSelected: true)
        simple = NBDTransmissionSession(export: export, structuredReplies: false, baseAllocationSelected: false)
    }

    private func validation(_ session: NBDTransmissionSession, _ command: NBDCommand, flags: NBDCommandFlags = [],
                            offset: UInt64 = 0, length: UInt32 = 512) -> NBDErrno? {
        session.validate(NBDRequest(flags: flags, command: command, cookie: 1, offset: offset, length: length))?.0
    }

    @Test func validationMessages() {
        let size = UInt64(1 << 20)
        #expect(structured.validate(NBDRequest(command: .read, cookie: 1, offset: size - 512, length: 1024))! ==
                (.invalid, "operation past EOF; From: 1048064, Len: 1024, Size: 1048576"))
        #expect(structured.validate(NBDRequest(command: .read, cookie: 1, length: 33_554_433))! ==
                (.invalid, "len (33554433) is larger than max len (33554432)"))
        #expect(structured.validate(NBDRequest(command: NBDCommand(rawValue: 99), cookie: 1))! ==
                (.invalid, "invalid request type (99) received"))
        #expect(structured.validate(NBDRequest(flags: NBDCommandFlags(rawValue: 0x20), command: .read, cookie: 1, length: 1))! ==
                (.invalid, "unsupported flags for command read (got 0x20)"))
        #expect(simple.validate(NBDRequest(command: .blockStatus, cookie: 1, length: 512))! ==
                (.invalid, "CMD_BLOCK_STATUS not negotiated"))
        #expect(structured.validate(NBDRequest(command: .blockStatus, cookie: 1, length: 0))! == (.invalid, "need non-zero length"))
    }

    @Test func errorValuesFollowTheSpec() throws {
        let size = UInt32(1 << 20)
        #expect(validation(structured, .write, offset: UInt64(size) - 1, length: 2) == .noSpace)
        #expect(validation(structured, .writeZeroes, offset: UInt64(size), length: 1) == .noSpace)
        #expect(validation(structured, .trim, offset: UInt64(size), length: 1) == .invalid)
        #expect(validation(structured, .read, flags: .dontFragment) == nil)
        #expect(validation(simple, .read, flags: .dontFragment) == .invalid, "DF needs structured replies")
        #expect(validation(structured, .writeZeroes, flags: [.noHole, .fastZero, .fua]) == nil)
        #expect(validation(structured, .write, flags: .noHole) == .invalid)
        #expect(validation(structured, .read, length: 0) == nil)
        #expect(validation(structured, .trim, length: size) == nil, "payload-free commands may exceed the payload limit")

        let readOnly = NBDTransmissionSession(export: try makeExport(writable: false).0, structuredReplies: true, baseAllocationSelected: false)
        for command in [NBDCommand.write, .trim, .writeZeroes] {
            #expect(readOnly.validate(NBDRequest(command: command, cookie: 1, length: 1))! == (.permissionDenied, "Export is read-only"))
        }
        #expect(validation(readOnly, .read) == nil)
        #expect(validation(readOnly, .flush, length: 0) == nil)
    }

    @Test func writeThenReadStructuredAndSimple() throws {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        let written = structured.perform(NBDRequest(flags: .fua, command: .write, cookie: 1, offset: 100, length: 1000),
                                         payload: ByteBuffer(bytes: bytes))
        #expect(try decodeReply(written) == [.simpleReply(error: nil, cookie: 1, data: nil)])
        #expect(driver.calls == [.write(offset: 100, length: 1000, flags: .fua)])

        let read = structured.perform(NBDRequest(command: .read, cookie: 1, offset: 100, length: 1000), payload: nil)
        #expect(try decodeReply(read) == [.chunk(NBDReplyChunk(cookie: 1, content: .offsetData(offset: 100, data: ByteBuffer(bytes: bytes))))])

        let simpleRead = simple.perform(NBDRequest(command: .read, cookie: 1, offset: 100, length: 1000), payload: nil)
        #expect(try decodeReply(simpleRead, readLength: 1000) == [.simpleReply(error: nil, cookie: 1, data: ByteBuffer(bytes: bytes))])
    }

    @Test func emptyReadIsANoneChunk() throws {
        let reply = structured.perform(NBDRequest(command: .read, cookie: 3, offset: 1 << 20, length: 0), payload: nil)
        #expect(try decodeReply(reply) == [.chunk(NBDReplyChunk(cookie: 3, content: .none))])
    }

    @Test func ioErrorsBecomeErrorChunksOrSimpleErrors() throws {
        driver.fail(with: .system(errno: 5, operation: "pread"))
        let reply = structured.perform(NBDRequest(command: .read, cookie: 1, offset: 0, length: 4096), payload: nil)
        #expect(try decodeReply(reply) == [.chunk(NBDReplyChunk(cookie: 1, content: .error(.ioError, message: "reading from file failed: pread: Input/output error")))])

        driver.fail(with: .system(errno: 122, operation: "pwrite"))
        let simpleReply = simple.perform(NBDRequest(command: .write, cookie: 2, offset: 0, length: 1), payload: ByteBuffer(bytes: [1]))
        #expect(try decodeReply(simpleReply) == [.simpleReply(error: .noSpace, cookie: 2, data: nil)])
    }

    @Test func writeZeroesFlags() {
        _ = structured.perform(NBDRequest(flags: [.noHole, .fua], command: .writeZeroes, cookie: 1, offset: 0, length: 4096), payload: nil)
        _ = structured.perform(NBDRequest(flags: .fastZero, command: .writeZeroes, cookie: 2, offset: 0, length: 4096), payload: nil)
        #expect(driver.calls == [
            .writeZeroes(offset: 0, length: 4096, flags: .fua),
            .writeZeroes(offset: 0, length: 4096, flags: [.mayUnmap, .fastZero]),
        ])
    }

    @Test func trimWithFUAFlushes() {
        _ = structured.perform(NBDRequest(flags: .fua, command: .trim, cookie: 1, offset: 0, length: 65536), payload: nil)
        #expect(driver.calls == [.discard(offset: 0, length: 65536), .flush])
    }

    @Test func blockStatusReportsAllocation() throws {
        _ = structured.perform(NBDRequest(command: .write, cookie: 1, offset: 65536, length: 1), payload: ByteBuffer(bytes: [1]))
        let reply = structured.perform(NBDRequest(command: .blockStatus, cookie: 2, offset: 0, length: 4 * 65536), payload: nil)
        #expect(try decodeReply(reply, cookie: 2) == [.chunk(NBDReplyChunk(cookie: 2, content: .blockStatus(contextID: 0, extents: [
            NBDBlockStatusDescriptor(length: 65536, flags: 3),
            NBDBlockStatusDescriptor(length: 65536, flags: 0),
            NBDBlockStatusDescriptor(length: 2 * 65536, flags: 3),
        ])))])

        let one = structured.perform(NBDRequest(flags: .requestOne, command: .blockStatus, cookie: 3, offset: 4096, length: 4 * 65536), payload: nil)
        #expect(try decodeReply(one, cookie: 3) == [.chunk(NBDReplyChunk(cookie: 3, content: .blockStatus(contextID: 0, extents: [
            NBDBlockStatusDescriptor(length: 65536 - 4096, flags: 3),
        ])))])
    }
}
