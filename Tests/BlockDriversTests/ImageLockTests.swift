import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

/// Image locks between two nodes on one file (two open file descriptions, as two
/// processes would have) and against QEMU's own tools.
@Suite struct ImageLockTests {
    let directory = TemporaryDirectory()

    private func open(_ path: String, locking: FileOptions.Locking = .auto) throws -> BlockNode {
        let options = BlockNodeOptions(nodeName: "f0")
        return try makeNode(FileDriver(options: FileOptions(filename: path, locking: locking), node: options), options)
    }

    /// What a format driver such as qcow2 claims on its file: write, sharing no writers.
    private let exclusiveWriter = BlockPermissionClaim(
        holder: "node 'q0'", role: "file", required: [.consistentRead, .write], shared: [.consistentRead, .writeUnchanged])

    @Test func writersConflictWhenOneDoesNotShareWrite() throws {
        let path = directory.file("a", size: 1 << 20)
        let first = try open(path)
        let second = try open(path)
        let token = try first.claim(exclusiveWriter)
        #expect(throws: BlockError.permissionConflict("Failed to get \"write\" lock")) { _ = try second.claim(.export(writable: true)) }
        // A reader that lets others write is fine; one that does not is refused.
        _ = try second.claim(.export(writable: false))
        first.release(token)
        _ = try second.claim(.export(writable: true))
        #expect(throws: BlockError.permissionConflict("Failed to get shared \"write\" lock")) { _ = try first.claim(exclusiveWriter) }
    }

    @Test func exportsUnshareResize() throws {
        let path = directory.file("a", size: 1 << 20)
        let exported = try open(path)
        let other = try open(path)
        _ = try exported.claim(.export(writable: true))
        #expect(throws: BlockError.permissionConflict("Failed to get \"resize\" lock")) { try other.truncate(to: 4096) }
        #expect(fileSize(path) == 1 << 20)
    }

    @Test func lockingOffTakesNoLocks() throws {
        let path = directory.file("a", size: 1 << 20)
        let first = try open(path, locking: .off)
        let second = try open(path)
        _ = try first.claim(exclusiveWriter)
        _ = try second.claim(.export(writable: true))
    }

    @Test func qemuToolsSeeOurLocks() throws {
        let path = directory.file("a", size: 1 << 20)
        let node = try open(path)
        let token = try node.claim(exclusiveWriter)
        let refused = try run(["qemu-io", "-f", "raw", "-c", "write 0 512", path])
        #expect(refused.status != 0)
        #expect(refused.output.contains("Failed to get \"write\" lock"))
        node.release(token)
        let accepted = try run(["qemu-io", "-f", "raw", "-c", "write 0 512", path])
        #expect(accepted.status == 0)
    }
}
