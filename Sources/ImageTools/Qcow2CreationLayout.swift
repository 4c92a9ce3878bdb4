import BlockDrivers

/// Where a new qcow2 image keeps its refcount structures and L1 table, placed as qemu-img
/// places them, so that our images are byte for byte what `qemu-img create` writes.
///
/// qemu-img writes the header (cluster 0), a one-cluster refcount table (cluster 1) and an
/// empty refcount block (cluster 2); it then allocates clusters 0–2 and the L1 table with
/// its normal allocator. That allocator scans for free clusters from a moving index; when a
/// refcount update reaches a range without a refcount block, it places the block in the
/// next free cluster (if that cluster lies outside the block's own range, the block's
/// refcount needs another block first), hooks it into the table, undoes the update so far
/// and searches again. This type replays those steps on an in-memory model.
struct Qcow2CreationLayout: Equatable {
    let clusterBits: Int
    let refcountOrder: Int
    let l1Entries: UInt64
    /// Byte offset of the L1 table; 0 when the image has no L1 entries.
    private(set) var l1Offset: UInt64 = 0
    /// Refcount table (one cluster): block cluster index per table index.
    private(set) var refcountBlocks: [UInt64: UInt64] = [:]
    /// Refcount of every cluster in use.
    private(set) var refcounts: [UInt64: UInt64] = [:]

    enum Failure: Error { case refcountTableFull }

    private var freeClusterIndex: UInt64 = 0
    private var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    private var entriesPerBlock: UInt64 { (clusterSize * 8) >> UInt64(refcountOrder) }
    private var tableCapacity: UInt64 { clusterSize / 8 }

    init(clusterBits: Int, refcountOrder: Int, l1Entries: UInt64) throws(Failure) {
        self.clusterBits = clusterBits
        self.refcountOrder = refcountOrder
        self.l1Entries = l1Entries
        refcountBlocks[0] = 2
        _ = try allocate(3)
        if l1Entries > 0 {
            l1Offset = try allocate((l1Entries * 8 + clusterSize - 1) / clusterSize) << UInt64(clusterBits)
        }
    }

    /// Where the file ends: after the L1 table's bytes or the last refcount block.
    var fileSize: UInt64 {
        let lastBlockEnd = (refcountBlocks.values.max()! + 1) << UInt64(clusterBits)
        return max(l1Offset + l1Entries * 8, lastBlockEnd)
    }

    /// The refcount table cluster's content.
    var refcountTableBytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
        for (index, block) in refcountBlocks {
            let value = block << UInt64(clusterBits)
            for byte in 0..<8 { bytes[Int(index) * 8 + byte] = UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * byte)) }
        }
        return bytes
    }

    /// The refcount blocks: byte offset and content.
    var refcountBlockContents: [(offset: UInt64, bytes: [UInt8])] {
        refcountBlocks.sorted { $0.value < $1.value }.map { index, block in
            var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
            bytes.withUnsafeMutableBytes { raw in
                let first = index * entriesPerBlock
                for (cluster, count) in refcounts where cluster >= first && cluster < first + entriesPerBlock && count > 0 {
                    Qcow2TableCache.setRefcount(in: raw, index: Int(cluster - first), order: refcountOrder, count)
                }
            }
            return (block << UInt64(clusterBits), bytes)
        }
    }

    // MARK: The allocator model

    private enum Outcome { case done, restart }

    private func refcount(_ cluster: UInt64) -> UInt64 {
        refcountBlocks[cluster / entriesPerBlock] == nil ? 0 : refcounts[cluster, default: 0]
    }

    /// The next `count` free clusters from the scan index (the index moves past them).
    private mutating func findFree(_ count: UInt64) -> UInt64 {
        var found: UInt64 = 0
        while found < count {
            let cluster = freeClusterIndex
            freeClusterIndex += 1
            found = refcount(cluster) == 0 ? found + 1 : 0
        }
        return freeClusterIndex - count
    }

    private mutating func allocate(_ count: UInt64) throws(Failure) -> UInt64 {
        while true {
            let start = findFree(count)
            if try increment(from: start, count: count) == .done { return start }
        }
    }

    private mutating func increment(from start: UInt64, count: UInt64) throws(Failure) -> Outcome {
        for cluster in start..<start + count {
            if refcountBlocks[cluster / entriesPerBlock] == nil, try addRefcountBlock(for: cluster) == .restart {
                for undone in start..<cluster {
                    refcounts[undone, default: 0] -= 1
                    if refcounts[undone] == 0 && undone < freeClusterIndex { freeClusterIndex = undone }
                }
                return .restart
            }
            refcounts[cluster, default: 0] += 1
        }
        return .done
    }

    /// Places the block covering `cluster`; the caller always starts over afterwards.
    private mutating func addRefcountBlock(for cluster: UInt64) throws(Failure) -> Outcome {
        let tableIndex = cluster / entriesPerBlock
        guard tableIndex < tableCapacity else { throw .refcountTableFull }
        let block = findFree(1)
        if block / entriesPerBlock == tableIndex {
            refcounts[block] = 1
        } else if try increment(from: block, count: 1) == .restart {
            return .restart
        }
        refcountBlocks[tableIndex] = block
        return .restart
    }
}
