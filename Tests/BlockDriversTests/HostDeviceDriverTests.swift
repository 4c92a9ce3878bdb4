import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

@Suite(.serialized) struct HostDeviceDriverTests {
    let directory = TemporaryDirectory()

    private func open(_ path: String, direct: Bool = false) throws -> BlockNode {
        let options = BlockNodeOptions(nodeName: "h0", discard: .unmap, cacheDirect: direct)
        return try makeNode(HostDeviceDriver(options: FileOptions(filename: path), node: options), options)
    }

    @Test func regularFilesAreRefused() throws {
        let path = directory.file("a", size: 4096)
        let error = #expect(throws: BlockError.self) { _ = try open(path) }
        #expect(error?.description == "'host_device' driver requires '\(path)' to be either a character or block device")
        let missing = #expect(throws: BlockError.self) { _ = try open("/nonexistent") }
        #expect(missing?.description == "Could not open '/nonexistent': No such file or directory")
    }

    @Test func characterDeviceHasItsSizeAndDoesNotGrow() throws {
        let node = try open("/dev/null")
        #expect(node.size == 0)
        #expect(throws: BlockError.noSpace) { try node.write(at: 0, [1]) }
        #expect(throws: BlockError.invalidArgument("Cannot grow device files")) { try node.truncate(to: 4096) }
        try node.truncate(to: 0)
        #expect(node.filename == .plain("/dev/null"))
    }

    @Test func loopDeviceFollowsItsBackingFile() throws {
        let backing = directory.file("backing", size: 1 << 20)
        let attach = try run(["losetup", "-f", "--show", backing])
        try #require(attach.status == 0, "losetup failed: \(attach.output)")
        let device = attach.output.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(["losetup", "-d", device]) }

        let node = try open(device, direct: true)
        #expect(node.driver.capabilities.requestAlignment == 512)
        #expect(node.size == 1 << 20)
        try node.write(at: 1000, [1, 2, 3])
        try node.flush()
        #expect(contents(of: backing, at: 1000, count: 3) == [1, 2, 3])
        #expect(throws: BlockError.noSpace) { try node.write(at: (1 << 20) - 1, [1, 2]) }

        try node.write(at: 65536, [UInt8](repeating: 7, count: 65536))
        try node.writeZeroes(at: 65536, length: 4096)
        try node.writeZeroes(at: 69632, length: 4096, flags: .mayUnmap)
        try node.discard(at: 98304, length: 32768)
        try node.flush()
        #expect(try node.read(at: 65536, count: 8192) == [UInt8](repeating: 0, count: 8192))
        #expect(try node.read(at: 73728, count: 1) == [7])
        #expect(node.driver.specificStatistics?.discardOperationsSucceeded == 1)
        #expect(node.driver.specificStatistics?.driver == "host_device")

        // The device grows underneath: a request past the old end finds the new size.
        #expect(truncate(backing, 2 << 20) == 0)
        let refresh = try run(["losetup", "-c", device])
        try #require(refresh.status == 0, "losetup -c failed: \(refresh.output)")
        #expect(node.size == 1 << 20)
        try node.write(at: 1_572_864, [9])
        #expect(node.size == 2 << 20)
        #expect(try node.read(at: 1_572_864, count: 1) == [9])
        #expect(throws: BlockError.invalidArgument("Cannot grow device files")) { try node.truncate(to: 4 << 20) }
        node.driver.close()
    }
}
