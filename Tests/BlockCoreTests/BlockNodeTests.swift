import Testing
@testable import BlockCore

@Suite struct BlockNodeTests {
    @Test func readsAndWritesInsideTheNode() throws {
        let (node, _, _) = try makeNode(size: 4096)
        try node.write(at: 100, [1, 2, 3])
        #expect(try node.read(at: 99, count: 5) == [0, 1, 2, 3, 0])
    }

    @Test func readPastTheEndIsOutOfRange() throws {
        let (node, _, _) = try makeNode(size: 4096)
        #expect(throws: BlockError.outOfRange(offset: 4000, length: 100, size: 4096)) { try node.read(at: 4000, count: 100) }
        #expect(throws: BlockError.outOfRange(offset: .max, length: 2, size: 4096)) {
            try node.blockStatus(at: .max, length: 2)
        }
        #expect(throws: BlockError.outOfRange(offset: 4096, length: 1, size: 4096)) { try node.discard(at: 4096, length: 1) }
    }

    @Test func writePastTheEndOfAFixedNodeIsNoSpace() throws {
        let (node, driver, _) = try makeNode(size: 4096)
        #expect(throws: BlockError.noSpace) { try node.write(at: 4095, [1, 2]) }
        #expect(throws: BlockError.noSpace) { try node.writeZeroes(at: 0, length: 4097) }
        #expect(driver.requests.isEmpty)
        #expect(node.statistics.snapshot().write.invalid == 0)
        #expect(node.statistics.snapshot().write.failed == 2)
    }

    @Test func growableNodeGrowsOnWrite() throws {
        let (node, driver, _) = try makeNode(size: 4096, growable: true)
        try node.write(at: 8192, [7])
        #expect(node.size == 8193)
        #expect(driver.bytes.count == 8193)
        #expect(throws: BlockError.outOfRange(offset: 8193, length: 1, size: 8193)) { try node.read(at: 8193, count: 1) }
    }

    @Test func sizeIsRereadBeforeRefusing() throws {
        let (node, driver, _) = try makeNode(size: 4096)
        try driver.truncate(to: 8192)
        #expect(node.size == 4096)
        #expect(try node.read(at: 8000, count: 192).count == 192)
        #expect(node.size == 8192)
    }

    @Test func readOnlyNodeRefusesWriteTypeRequests() throws {
        let (node, driver, _) = try makeNode(size: 4096, readOnly: true, discard: .unmap)
        #expect(throws: BlockError.readOnly) { try node.write(at: 0, [1]) }
        #expect(throws: BlockError.readOnly) { try node.writeZeroes(at: 0, length: 512) }
        #expect(throws: BlockError.readOnly) { try node.discard(at: 0, length: 512) }
        #expect(throws: BlockError.invalidArgument("Image is read-only")) { try node.truncate(to: 8192) }
        #expect(try node.read(at: 0, count: 1) == [0])
        #expect(driver.requests == ["read 0 1"])
    }

    @Test func unalignedWriteIsReadModifyWrite() throws {
        let (node, driver, _) = try makeNode(size: 4096, alignment: 512)
        try node.write(at: 0, [UInt8](repeating: 9, count: 1024))
        try node.write(at: 510, [1, 2, 3, 4])
        #expect(Array(driver.bytes[508..<516]) == [9, 9, 1, 2, 3, 4, 9, 9])
        #expect(driver.requests.suffix(2) == ["read 0 1024", "write 0 1024"])
        #expect(try node.read(at: 509, count: 6) == [9, 1, 2, 3, 4, 9])
    }

    @Test func unalignedWriteZeroesSplitsHeadMiddleTail() throws {
        let (node, driver, _) = try makeNode(size: 4096, alignment: 512)
        try node.write(at: 0, [UInt8](repeating: 9, count: 4096))
        try node.writeZeroes(at: 100, length: 1500)
        #expect(driver.bytes[99] == 9 && driver.bytes[1600] == 9)
        #expect(driver.bytes[100..<1600].allSatisfy { $0 == 0 })
        #expect(driver.requests.contains("zero 512 1024"))
        #expect(throws: BlockError.notSupported("fast zero not possible on unaligned range")) {
            try node.writeZeroes(at: 1, length: 512, flags: .fastZero)
        }
    }

    @Test func unalignedWritePastTheEndOfAGrowableNodeReadsZeroesBeyondIt() throws {
        let (node, driver, _) = try makeNode(size: 1000, alignment: 512, growable: true)
        try node.write(at: 1020, [5])
        #expect(driver.bytes.count == 1024)
        #expect(driver.bytes[1020] == 5 && driver.bytes[1021] == 0)
        #expect(node.size == 1024)
    }

    @Test func discardIgnoredByDefaultAndAlignedWithUnmap() throws {
        let (ignoring, ignoringDriver, _) = try makeNode(size: 4096, alignment: 512)
        try ignoring.discard(at: 0, length: 4096)
        #expect(ignoringDriver.requests.isEmpty)

        let (unmapping, driver, _) = try makeNode(size: 4096, alignment: 512, discard: .unmap)
        try unmapping.discard(at: 100, length: 1500)
        #expect(driver.requests == ["discard 512 1024"])
        #expect(unmapping.statistics.snapshot().unmap.bytes == 1024)
    }

    @Test func writeZeroesDropsMayUnmapUnlessDiscardIsUnmap() throws {
        let (ignoring, ignoringDriver, _) = try makeNode(size: 4096)
        try ignoring.writeZeroes(at: 0, length: 512, flags: .mayUnmap)
        let (unmapping, driver, _) = try makeNode(size: 4096, discard: .unmap)
        try unmapping.writeZeroes(at: 0, length: 512, flags: .mayUnmap)
        #expect(ignoringDriver.requests == ["zero 0 512"])
        #expect(driver.requests == ["zero-unmap 0 512"])
    }

    @Test func writeHighestOffsetCountsWritesThatReachedTheDriver() throws {
        let (node, driver, _) = try makeNode(size: 1 << 20, alignment: 512, discard: .unmap)
        try node.write(at: 1000, [1])
        #expect(node.statistics.writeHighestOffset == 1024)
        try node.writeZeroes(at: 4096, length: 4096)
        #expect(node.statistics.writeHighestOffset == 8192)
        try node.discard(at: 65536, length: 4096)
        #expect(node.statistics.writeHighestOffset == 8192)
        _ = try? node.write(at: 1 << 20, [UInt8](repeating: 0, count: 512))
        #expect(node.statistics.writeHighestOffset == 8192)
        driver.failWrites(true)
        #expect(throws: BlockError.system(errno: 5, operation: "write")) { try node.write(at: 16384, [UInt8](repeating: 1, count: 512)) }
        #expect(node.statistics.writeHighestOffset == 16896)
        #expect(node.statistics.snapshot().write.failed == 2)
    }

    @Test func flushIsSkippedWithNoFlush() throws {
        let driver = MemoryDriver(size: 512)
        let node = try BlockNode(options: BlockNodeOptions(nodeName: "n", cacheNoFlush: true), driver: driver, eventSink: EventRecorder())
        try node.flush()
        #expect(driver.requests.isEmpty)
    }

    @Test func truncateRefusedWhenDriverCannotResize() throws {
        let (node, _, _) = try makeNode(size: 4096, resizable: false)
        #expect(throws: BlockError.notSupported("Image format driver does not support resize")) { try node.truncate(to: 8192) }
        let (resizable, _, _) = try makeNode(size: 4096)
        try resizable.truncate(to: 8192)
        #expect(resizable.size == 8192)
    }

    @Test func reportsFilenameAndImageInfo() throws {
        let (node, _, _) = try makeNode(size: 4096)
        #expect(node.filename == .plain("memory://"))
        #expect(node.imageInfo == BlockImageInfo(format: "memory", virtualSize: 4096, actualSize: nil, dirtyFlag: nil))
    }
}
