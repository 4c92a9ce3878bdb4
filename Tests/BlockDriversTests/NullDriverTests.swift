import BlockCore
import Testing
@testable import BlockDrivers

@Suite struct NullDriverTests {
    private func open(_ options: NullOptions) throws -> BlockNode {
        try makeNode(NullDriver(options: options), BlockNodeOptions(nodeName: "n0"))
    }

    @Test func readsLeaveTheBufferAloneUnlessReadZeroes() throws {
        let node = try open(NullOptions())
        #expect(node.size == 1 << 30)
        #expect(try node.read(at: 0, count: 4, filler: 0xAB) == [0xAB, 0xAB, 0xAB, 0xAB])
        let zeroing = try open(NullOptions(size: 4096, readZeroes: true))
        #expect(zeroing.size == 4096)
        #expect(try zeroing.read(at: 0, count: 4, filler: 0xAB) == [0, 0, 0, 0])
    }

    @Test func writesAreDroppedInsideTheSize() throws {
        let node = try open(NullOptions(size: 4096))
        try node.write(at: 0, [1, 2, 3])
        try node.writeZeroes(at: 0, length: 4096)
        try node.flush()
        #expect(throws: BlockError.noSpace) { try node.write(at: 4096, [1]) }
    }

    @Test func blockStatusIsAHoleThatReadsAsZeroesOnlyWithReadZeroes() throws {
        #expect(try open(NullOptions()).blockStatus(at: 0, length: 1 << 20) == [BlockExtent(length: 1 << 20, isHole: true, isZero: false)])
        #expect(try open(NullOptions(readZeroes: true)).blockStatus(at: 0, length: 512) == [BlockExtent(length: 512, isHole: true, isZero: true)])
    }

    @Test func cannotBeResized() throws {
        let node = try open(NullOptions())
        let error = #expect(throws: BlockError.self) { try node.truncate(to: 4096) }
        #expect(error?.description == "Image format driver does not support resize")
    }

    @Test func negativeSizeIsACleanError() {
        #expect(throws: BlockError.invalidArgument("Parameter 'size' expects a non-negative number below 2^64")) {
            _ = try NullDriver(options: NullOptions(size: -1))
        }
        #expect(throws: BlockError.invalidArgument("latency-ns is invalid")) {
            _ = try NullDriver(options: NullOptions(latencyNanoseconds: -1))
        }
    }

    @Test func describesGivenOptionsLikeQEMU() throws {
        #expect(try open(NullOptions(latencyNanoseconds: 5)).filename == .plain("null-co://"))
        #expect(try open(NullOptions(size: 4096, readZeroes: true)).filename == .json(BlockOptionObject([
            .init("read-zeroes", .boolean(true)), .init("driver", .string("null-co")), .init("size", .integer(4096)),
        ])))
        #expect(try open(NullOptions(readZeroes: false)).filename == .json(BlockOptionObject([
            .init("read-zeroes", .boolean(false)), .init("driver", .string("null-co")),
        ])))
        let aio = try makeNode(NullDriver(options: NullOptions(), variant: .aio), BlockNodeOptions(nodeName: "n1"))
        #expect(aio.filename == .plain("null-aio://"))
        #expect(aio.imageInfo == BlockImageInfo(format: "null-aio", virtualSize: 1 << 30, actualSize: 0, dirtyFlag: nil))
    }

    @Test func latencyDelaysRequests() throws {
        let node = try open(NullOptions(latencyNanoseconds: 20_000_000))
        let start = ContinuousClock.now
        try node.write(at: 0, [1])
        #expect(ContinuousClock.now - start >= .milliseconds(20))
    }
}
