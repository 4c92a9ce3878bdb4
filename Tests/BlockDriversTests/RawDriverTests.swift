import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

@Suite struct RawDriverTests {
    let directory = TemporaryDirectory()

    private func fileNode(_ path: String, sink: EventRecorder = EventRecorder()) throws -> BlockNode {
        let options = BlockNodeOptions(nodeName: "f0")
        return try makeNode(FileDriver(options: FileOptions(filename: path), node: options), options, sink: sink)
    }

    private func raw(_ options: RawOptions, over child: BlockNode, sink: EventRecorder = EventRecorder()) throws -> BlockNode {
        let nodeOptions = BlockNodeOptions(nodeName: "r0")
        return try makeNode(RawDriver(options: options, file: child, node: nodeOptions), nodeOptions, sink: sink)
    }

    @Test func optionErrorsUseQEMUTexts() throws {
        let child = try fileNode(directory.file("a", size: 16 << 20))
        let node = BlockNodeOptions(nodeName: "r0")
        func open(_ options: RawOptions) -> String? {
            do { _ = try RawDriver(options: options, file: child, node: node); return nil } catch { return error.description }
        }
        #expect(open(RawOptions(size: 1000)) == "Specified size is not multiple of 512")
        #expect(open(RawOptions(offset: 16 << 20, size: 4096))
            == "The sum of offset (16777216) and size (4096) has to be smaller or equal to the  actual size of the containing file (16777216)")
        #expect(open(RawOptions(offset: (16 << 20) + 1)) == "Offset (16777217) cannot be greater than size of the containing file (16777216)")
        #expect(open(RawOptions(offset: -1)) == "Parameter 'offset' expects a non-negative number below 2^64")
        #expect(open(RawOptions(size: -512)) == "Parameter 'size' expects a non-negative number below 2^64")
        #expect(open(RawOptions(offset: 16 << 20)) == nil)
    }

    @Test func windowForwardsThroughTheChildNode() throws {
        let path = directory.file("a", size: 1 << 20)
        let childEvents = EventRecorder()
        let child = try fileNode(path, sink: childEvents)
        let node = try raw(RawOptions(offset: 4096, size: 8192), over: child)
        #expect(node.size == 8192)
        child.setWriteThreshold(5000)
        try node.write(at: 1000, [UInt8](repeating: 1, count: 100))
        #expect(contents(of: path, at: 5096, count: 100) == [UInt8](repeating: 1, count: 100))
        #expect(childEvents.recorded == [.writeThresholdExceeded(nodeName: "f0", amountExceeded: 196, threshold: 5000)])
        #expect(child.statistics.writeHighestOffset == 5196)
        #expect(node.statistics.writeHighestOffset == 1100)
        #expect(try node.read(at: 999, count: 2) == [0, 1])
        #expect(throws: BlockError.noSpace) { try node.write(at: 8192, [1]) }
        #expect(try node.blockStatus(at: 0, length: 8192).first == BlockExtent(length: 4096, isHole: false, isZero: false))
        #expect(try node.blockStatus(at: 4096, length: 4096) == [BlockExtent(length: 4096, isHole: true, isZero: true)])
        try node.flush()
        #expect(fileSize(path) == 1 << 20)
    }

    @Test func sizeFollowsTheChildUnlessFixed() throws {
        let path = directory.file("a", size: 1 << 20)
        let child = try fileNode(path)
        let fixed = try raw(RawOptions(size: 4096), over: child)
        #expect(throws: BlockError.invalidArgument("Cannot resize fixed-size raw disks")) { try fixed.truncate(to: 8192) }
        let window = try raw(RawOptions(offset: 512), over: child)
        #expect(window.size == (1 << 20) - 512)
        try window.truncate(to: 4096)
        #expect(fileSize(path) == 4608)
        #expect(window.size == 4096)
    }

    @Test func describesItselfLikeQEMU() throws {
        let path = directory.file("a", size: 1 << 20)
        let child = try fileNode(path)
        #expect(try raw(RawOptions(), over: child).filename == .plain(path))
        let file = BlockOptionObject([.init("driver", .string("file")), .init("filename", .string(path))])
        #expect(try raw(RawOptions(offset: 0, size: 512), over: child).filename == .json(BlockOptionObject([
            .init("offset", .integer(0)), .init("driver", .string("raw")), .init("size", .integer(512)), .init("file", .object(file)),
        ])))
        let null = try makeNode(NullDriver(options: NullOptions()), BlockNodeOptions(nodeName: "n0"))
        let overNull = try raw(RawOptions(), over: null)
        #expect(overNull.filename == .plain("null-co://"))
        #expect(overNull.imageInfo == BlockImageInfo(format: "raw", virtualSize: 1 << 30, actualSize: 0, dirtyFlag: nil))
        #expect(try raw(RawOptions(), over: overNull).filename == .json(BlockOptionObject([
            .init("driver", .string("raw")),
            .init("file", .object(BlockOptionObject([.init("driver", .string("raw")), .init("file", .object(BlockOptionObject([.init("driver", .string("null-co"))])))]))),
        ])))
        #expect(try raw(RawOptions(), over: child).imageInfo == BlockImageInfo(format: "raw", virtualSize: 1 << 20, actualSize: 0, dirtyFlag: false))
    }

    @Test func usersPermissionsReachTheChild() throws {
        let child = try fileNode(directory.file("a", size: 1 << 20))
        let node = try raw(RawOptions(), over: child)
        let token = try node.claim(.export(writable: true))
        #expect(child.permissions.required == [.consistentRead, .write])
        #expect(throws: BlockError.permissionConflict(
            "Permission conflict on node 'f0': permissions 'resize' are both required by an unnamed block device "
                + "(uses node 'f0' as 'root' child) and unshared by node 'r0' (uses node 'f0' as 'file' child).")
        ) { try child.truncate(to: 4096) }
        node.release(token)
        try child.truncate(to: 4096)
        node.driver.close()
        #expect(child.permissions.required.isEmpty)
    }
}
