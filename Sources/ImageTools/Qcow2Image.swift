import BlockCore
import BlockDrivers

/// An open qcow2 image file with its parsed header (the block driver's parser), for tools
/// that read its metadata directly.
struct Qcow2Image {
    let file: ImageFile
    let header: Qcow2Header

    /// Parses the header the way the driver opens an image: the first sector gives the
    /// cluster size, then all of cluster 0 is parsed.
    init(file: ImageFile) throws(BlockError) {
        self.file = file
        let start = try file.read(at: 0, count: Int(min(file.size, 512)))
        let clusterBits = Qcow2ByteReader(start).u32(20)
        let clusterZero = clusterBits >= 9 && clusterBits <= 21
            ? try file.read(at: 0, count: Int(min(file.size, 1 << UInt64(clusterBits)))) : start
        header = try Qcow2Header(parsing: clusterZero, fileSize: file.size)
    }

    var clusterSize: UInt64 { header.clusterSize }
    var clusterBits: Int { header.clusterBits }
    var l2Entries: Int { Int(header.clusterSize / 8) }
    var refcountBlockEntries: UInt64 { (header.clusterSize * 8) >> UInt64(header.refcountOrder) }

    func readL1() throws(BlockError) -> [UInt64] {
        try file.readEntries(at: header.l1TableOffset, count: Int(header.l1Size))
    }

    func readRefcountTable() throws(BlockError) -> [UInt64] {
        try file.readEntries(at: header.refcountTableOffset, count: Int(UInt64(header.refcountTableClusters) * clusterSize / 8))
    }

    func readSnapshots() throws(BlockError) -> [Qcow2Snapshot] {
        try Qcow2Snapshot.readTable(from: file, at: header.snapshotsOffset, count: Int(header.snapshotCount)).snapshots
    }
}
