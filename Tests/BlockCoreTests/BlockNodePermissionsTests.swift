import Testing
@testable import BlockCore

@Suite struct BlockNodePermissionsTests {
    @Test func exportsShareEachOtherButNotResize() throws {
        let (node, _, _) = try makeNode("f0")
        let first = try node.claim(.export(writable: true))
        _ = try node.claim(.export(writable: false))
        #expect(node.permissions.required == [.consistentRead, .write])
        #expect(node.permissions.shared == [.consistentRead, .write, .writeUnchanged, .graphMod])
        #expect(throws: BlockError.permissionConflict(
            "Permission conflict on node 'f0': permissions 'resize' are both required by an unnamed block device "
                + "(uses node 'f0' as 'root' child) and unshared by an unnamed block device (uses node 'f0' as 'root' child).")
        ) { try node.truncate(to: 4096) }
        node.release(first)
        #expect(node.permissions.required == [.consistentRead])
    }

    @Test func conflictNamesBothHolders() throws {
        let (node, _, _) = try makeNode("f0")
        _ = try node.claim(BlockPermissionClaim(holder: "node 'q1'", role: "file", required: .consistentRead, shared: .consistentRead))
        #expect(throws: BlockError.permissionConflict(
            "Permission conflict on node 'f0': permissions 'write, resize' are both required by node 'q0' "
                + "(uses node 'f0' as 'file' child) and unshared by node 'q1' (uses node 'f0' as 'file' child).")
        ) {
            _ = try node.claim(BlockPermissionClaim(holder: "node 'q0'", role: "file", required: [.write, .resize], shared: .all))
        }
    }

    @Test func truncateWorksOnceTheExportIsGone() throws {
        let (node, _, _) = try makeNode("f0", size: 512)
        let token = try node.claim(.export(writable: true))
        #expect(throws: BlockError.self) { try node.truncate(to: 1024) }
        node.release(token)
        try node.truncate(to: 1024)
        #expect(node.size == 1024)
        #expect(node.permissions.required.isEmpty)
    }
}
