import NIOCore
import Testing
@testable import NBDWire

@Suite struct NBDOptionPayloadReaderTests {
    private func parseGo(_ bytes: [UInt8]) throws(NBDOptionPayloadError) -> NBDExportInfoRequest {
        var reader = NBDOptionPayloadReader(option: .go, data: ByteBuffer(bytes: bytes))
        return try NBDExportInfoRequest(from: &reader)
    }

    @Test func infoRequestRoundTrip() throws {
        var data = ByteBuffer()
        let request = NBDExportInfoRequest(exportName: "disk", requestedInfo: [.name, .blockSize, NBDInfoType(rawValue: 99)])
        request.encode(into: &data)
        #expect(try parseGo(Array(data.readableBytesView)) == request)
    }

    @Test func truncatedInfoRequest() {
        #expect(throws: NBDOptionPayloadError("Inconsistent lengths in option go")) { try parseGo([0, 0, 0, 5, 0x61]) }
        #expect(throws: NBDOptionPayloadError("Inconsistent lengths in option go")) { try parseGo([0, 0, 0, 0, 0, 1]) }
    }

    @Test func overlongName() {
        #expect(throws: NBDOptionPayloadError("Invalid name length: 5000")) { try parseGo([0, 0, 0x13, 0x88]) }
    }

    @Test func embeddedNUL() {
        #expect(throws: NBDOptionPayloadError("Unexpected embedded NUL in option go")) { try parseGo([0, 0, 0, 2, 0x61, 0, 0, 0]) }
    }

    @Test func trailingData() {
        #expect(throws: NBDOptionPayloadError("option 'go' has unexpected length")) { try parseGo([0, 0, 0, 0, 0, 0, 0xff]) }
    }

    @Test func metaContextQueriesSkipOverlongOnes() throws {
        var data = ByteBuffer()
        data.writeInteger(UInt32(3))
        data.writeInteger(UInt32(15))
        data.writeString("base:allocation")
        data.writeInteger(UInt32(5000))
        data.writeRepeatingByte(0x61, count: 5000)
        data.writeInteger(UInt32(5))
        data.writeString("qemu:")
        var reader = NBDOptionPayloadReader(option: .setMetaContext, data: data)
        #expect(try NBDMetaContextRequest.readQueries(from: &reader) == ["base:allocation", "qemu:"])
    }

    @Test func metaContextRoundTrip() throws {
        var data = ByteBuffer()
        NBDMetaContextRequest(exportName: "e", queries: ["base:allocation"]).encode(into: &data)
        var reader = NBDOptionPayloadReader(option: .listMetaContext, data: data)
        #expect(try reader.readName() == "e")
        #expect(try NBDMetaContextRequest.readQueries(from: &reader) == ["base:allocation"])
    }

    @Test func systemErrnoMapping() {
        #expect(NBDErrno(systemErrno: 30) == .permissionDenied)   // EROFS
        #expect(NBDErrno(systemErrno: 122) == .noSpace)           // EDQUOT
        #expect(NBDErrno(systemErrno: 27) == .noSpace)            // EFBIG
        #expect(NBDErrno(systemErrno: 5) == .ioError)
        #expect(NBDErrno(systemErrno: 2) == .invalid)             // ENOENT: not in the protocol
    }
}
