import Testing
@testable import ImageTools

/// Placement of refcount blocks and the L1 table when one refcount block is not enough
/// (values observed from `qemu-img create`).
@Suite struct Qcow2CreationLayoutTests {
    @Test func defaultClustersFitInTheFirstBlock() throws {
        let layout = try Qcow2CreationLayout(clusterBits: 16, refcountOrder: 4, l1Entries: 2)
        #expect(layout.l1Offset == 0x30000)
        #expect(layout.refcountBlocks == [0: 2])
        #expect(layout.refcounts == [0: 1, 1: 1, 2: 1, 3: 1])
        #expect(layout.fileSize == 0x30010)
    }

    @Test func noL1Table() throws {
        let layout = try Qcow2CreationLayout(clusterBits: 16, refcountOrder: 4, l1Entries: 0)
        #expect(layout.l1Offset == 0)
        #expect(layout.fileSize == 0x30000)
    }

    /// 512-byte clusters, 1 GiB: the L1 table (512 clusters) outgrows the first block; the
    /// block for clusters 256–511 goes after the table, and needs the next block first.
    @Test func blocksAfterALargeL1Table() throws {
        let layout = try Qcow2CreationLayout(clusterBits: 9, refcountOrder: 4, l1Entries: 32768)
        #expect(layout.l1Offset == 0x600)
        #expect(layout.refcountBlocks == [0: 2, 1: 515, 2: 516])
        #expect(layout.fileSize == 0x40a00)
        #expect((3...516).allSatisfy { layout.refcounts[UInt64($0)] == 1 })
    }

    @Test func manyBlocks() throws {
        // 512-byte clusters, 16 GiB: 33 blocks, the one describing itself placed first.
        let layout = try Qcow2CreationLayout(clusterBits: 9, refcountOrder: 4, l1Entries: 524_288)
        #expect(layout.refcountBlocks.count == 33)
        #expect(layout.refcountBlocks[1] == 0x400600 >> 9)
        #expect(layout.refcountBlocks[32] == 0x400800 >> 9)
        #expect(layout.refcountBlocks[2] == 0x400a00 >> 9)
        #expect(layout.fileSize == 0x404600)
    }

    @Test func refcountTableGrowthIsRefused() {
        #expect(throws: Qcow2CreationLayout.Failure.self) {
            try Qcow2CreationLayout(clusterBits: 9, refcountOrder: 4, l1Entries: 4_194_304)
        }
    }
}
