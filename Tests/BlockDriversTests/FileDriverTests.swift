import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

@Suite struct FileDriverTests {
    let directory = TemporaryDirectory()

    private func open(_ path: String, direct: Bool = false, discard: BlockNodeOptions.DiscardMode = .ignore,
                      readOnly: Bool = false, volume: Bool = false) throws -> BlockNode {
        let options = BlockNodeOptions(nodeName: "f0", readOnly: readOnly, discard: discard, cacheDirect: direct)
        return try makeNode(FileDriver(options: FileOptions(filename: path, volume: volume), node: options), options)
    }

    @Test func openErrorsUseQEMUTexts() throws {
        let node = BlockNodeOptions(nodeName: "f0")
        let missing = #expect(throws: BlockError.self) { _ = try FileDriver(options: FileOptions(filename: "/nonexistent/x"), node: node) }
        #expect(missing?.description == "Could not open '/nonexistent/x': No such file or directory")
        let directoryError = #expect(throws: BlockError.self) {
            _ = try FileDriver(options: FileOptions(filename: directory.path), node: BlockNodeOptions(nodeName: "f0", readOnly: true))
        }
        #expect(directoryError?.description == "'file' driver requires '\(directory.path)' to be a regular file")
        let path = directory.file("a", size: 4096)
        #expect(throws: BlockError.invalidArgument("aio=native was specified, but it requires cache.direct=on, which was not specified.")) {
            _ = try FileDriver(options: FileOptions(filename: path, aio: .native), node: node)
        }
        _ = try FileDriver(options: FileOptions(filename: path, aio: .native), node: BlockNodeOptions(nodeName: "f0", cacheDirect: true))
        _ = try FileDriver(options: FileOptions(filename: path, aio: .ioUring), node: node)
    }

    @Test func sparseFileBlockStatusFollowsHolesAndData() throws {
        let path = directory.file("a", size: 1 << 20)
        let node = try open(path)
        try node.write(at: 65536, [UInt8](repeating: 1, count: 4096))
        #expect(try node.blockStatus(at: 0, length: 1 << 20) == [BlockExtent(length: 65536, isHole: true, isZero: true)])
        #expect(try node.blockStatus(at: 65536, length: 1 << 20 - 65536) == [BlockExtent(length: 4096, isHole: false, isZero: false)])
        #expect(try node.blockStatus(at: 69632, length: 1 << 20 - 69632) == [BlockExtent(length: 1 << 20 - 69632, isHole: true, isZero: true)])
        #expect(node.imageInfo == BlockImageInfo(format: "file", virtualSize: 1 << 20, actualSize: 4096, dirtyFlag: false))
        #expect(contents(of: path, at: 65535, count: 2) == [0, 1])
    }

    @Test func writeZeroesPunchesOnlyWhenUnmapIsAllowed() throws {
        let path = directory.file("a", size: 1 << 20)
        let unmapping = try open(path, discard: .unmap)
        try unmapping.write(at: 0, [UInt8](repeating: 1, count: 1 << 20))
        try unmapping.writeZeroes(at: 0, length: 65536, flags: .mayUnmap)
        #expect(try unmapping.blockStatus(at: 0, length: 1 << 20).first == BlockExtent(length: 65536, isHole: true, isZero: true))
        #expect(try unmapping.read(at: 0, count: 65537) == [UInt8](repeating: 0, count: 65536) + [1])

        let keeping = try open(path)
        try keeping.writeZeroes(at: 131072, length: 4000, flags: .mayUnmap)
        #expect(try keeping.read(at: 131071, count: 4002) == [1] + [UInt8](repeating: 0, count: 4000) + [1])
        #expect(fileSize(path) == 1 << 20)
    }

    @Test func writeZeroesPastTheEndGrowsTheFile() throws {
        let path = directory.file("a", size: 4096)
        let node = try open(path, discard: .unmap)
        try node.writeZeroes(at: 8192, length: 4096, flags: .mayUnmap)
        #expect(fileSize(path) == 12288)
        try node.writeZeroes(at: 12288, length: 4096)
        #expect(fileSize(path) == 16384)
        #expect(node.size == 16384)
    }

    /// tmpfs has no FALLOC_FL_ZERO_RANGE: there a fast write-zeroes punches a hole and
    /// allocates it again (QEMU's fallback), so the space stays allocated; past the end
    /// of the file, allocating alone zeroes and grows it.
    @Test func fastZeroesWithoutZeroRangePunchAndAllocateAgain() throws {
        let shm = TemporaryDirectory(parent: "/dev/shm/")
        let path = shm.file("a", size: 0)
        let node = try open(path)
        try node.write(at: 0, [UInt8](repeating: 1, count: 1 << 20))
        try node.writeZeroes(at: 65536, length: 65536, flags: .fastZero)
        #expect(try node.read(at: 65535, count: 65538) == [1] + [UInt8](repeating: 0, count: 65536) + [1])
        #expect(allocatedBytes(path) == 1 << 20)
        try node.writeZeroes(at: 2 << 20, length: 65536, flags: .fastZero)
        #expect(fileSize(path) == (2 << 20) + 65536)
        #expect(node.size == (2 << 20) + 65536)
        #expect(allocatedBytes(path) == (1 << 20) + 65536)
        #expect(try node.read(at: (2 << 20) - 1, count: 65537) == [UInt8](repeating: 0, count: 65537))
    }

    private func allocatedBytes(_ path: String) -> Int {
        var info = stat()
        precondition(stat(path, &info) == 0)
        return Int(info.st_blocks) * 512
    }

    @Test func discardPunchesAHoleAndIsCounted() throws {
        let path = directory.file("a", size: 1 << 20)
        let node = try open(path, discard: .unmap)
        try node.write(at: 0, [UInt8](repeating: 1, count: 1 << 20))
        try node.discard(at: 65536, length: 131072)
        #expect(try node.blockStatus(at: 65536, length: 131072) == [BlockExtent(length: 131072, isHole: true, isZero: true)])
        #expect(fileSize(path) == 1 << 20)
        #expect(node.driver.specificStatistics == BlockDriverSpecificStatistics(
            driver: "file", discardOperationsSucceeded: 1, discardOperationsFailed: 0, discardBytesSucceeded: 131072))
    }

    @Test func growsOnWriteAndTruncates() throws {
        let path = directory.file("a", size: 0)
        let node = try open(path)
        try node.write(at: 10000, [1, 2, 3], flags: .fua)
        #expect(fileSize(path) == 10003)
        #expect(node.size == 10003)
        try node.flush()
        try node.truncate(to: 4096)
        #expect(fileSize(path) == 4096)
        #expect(node.size == 4096)
    }

    @Test func volumeNeverGrowsByItself() throws {
        let path = directory.file("a", size: 8192)
        let node = try open(path, discard: .unmap, volume: true)
        #expect(!node.driver.capabilities.growable)
        try node.write(at: 4096, [UInt8](repeating: 1, count: 4096))
        #expect(throws: BlockError.noSpace) { try node.write(at: 8192, [1]) }
        #expect(throws: BlockError.noSpace) { try node.write(at: 8000, [UInt8](repeating: 2, count: 400)) }
        #expect(throws: BlockError.noSpace) { try node.writeZeroes(at: 4096, length: 8192, flags: .mayUnmap) }
        #expect(throws: BlockError.noSpace) { try node.writeZeroes(at: 8192, length: 4096) }
        #expect(throws: BlockError.outOfRange(offset: 8192, length: 1, size: 8192)) { _ = try node.read(at: 8192, count: 1) }
        #expect(fileSize(path) == 8192)
        #expect(node.size == 8192)
        #expect(contents(of: path, at: 7999, count: 2) == [1, 1])
    }

    @Test func volumeSeesGrowthFromOutsideAndByResize() throws {
        let path = directory.file("a", size: 8192)
        let node = try open(path, volume: true)
        // A controller grows the file: the next write past the cached size finds the room.
        #expect(truncate(path, 16384) == 0)
        #expect(node.size == 8192)
        try node.write(at: 12288, [UInt8](repeating: 3, count: 4096))
        #expect(node.size == 16384)
        #expect(throws: BlockError.noSpace) { try node.write(at: 16384, [1]) }
        #expect(try node.read(at: 12287, count: 2) == [0, 3])
        // block_resize still grows it.
        try node.truncate(to: 32768)
        try node.writeZeroes(at: 16384, length: 16384)
        #expect(fileSize(path) == 32768)
    }

    @Test func directIOPadsUnalignedRequests() throws {
        let path = directory.file("a", size: 1000)
        let node = try open(path, direct: true)
        let alignment = node.driver.capabilities.requestAlignment
        #expect(alignment == 512 || alignment == 4096)
        try node.write(at: 700, [1, 2, 3])
        #expect(contents(of: path, at: 699, count: 5) == [0, 1, 2, 3, 0])
        #expect(try node.read(at: 699, count: 5) == [0, 1, 2, 3, 0])
        // The last partial block: the driver reads a whole block and gets a short read.
        #expect(try node.read(at: 990, count: 10) == [UInt8](repeating: 0, count: 10))
        try node.writeZeroes(at: 701, length: 1)
        #expect(contents(of: path, at: 700, count: 3) == [1, 0, 3])
    }

    @Test func directIOBouncesMisalignedMemory() throws {
        let path = directory.file("a", size: 8192)
        let node = try open(path, direct: true)
        let count = Int(node.driver.capabilities.requestAlignment)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: count + 1, alignment: 4096)
        defer { memory.deallocate() }
        let misaligned = UnsafeMutableRawBufferPointer(rebasing: memory[1...])
        misaligned.initializeMemory(as: UInt8.self, repeating: 5)
        try node.write(at: UInt64(count), from: UnsafeRawBufferPointer(misaligned))
        #expect(contents(of: path, at: count - 1, count: 2) == [0, 5])
        misaligned.initializeMemory(as: UInt8.self, repeating: 0)
        try node.read(at: UInt64(count), into: misaligned)
        #expect(misaligned.allSatisfy { $0 == 5 })
    }

    @Test func readOnlyNodeCannotWrite() throws {
        let path = directory.file("a", size: 4096)
        let node = try open(path, readOnly: true)
        #expect(throws: BlockError.readOnly) { try node.write(at: 0, [1]) }
        #expect(try node.read(at: 0, count: 1) == [0])
    }

    @Test func describesItselfByFilename() throws {
        let path = directory.file("a", size: 4096)
        let node = try open(path)
        #expect(node.filename == .plain(path))
        #expect(node.driver.optionsDescription == BlockOptionObject([.init("driver", .string("file")), .init("filename", .string(path))]))
    }
}
