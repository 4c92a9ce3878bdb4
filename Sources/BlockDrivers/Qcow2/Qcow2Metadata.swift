import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Counts data I/O running outside the metadata lock, in two alternating epochs, so that a
/// host cluster freed while a request may still use it is not handed out again before
/// that request is done.
final class Qcow2InFlightIO: Sendable {
    private let even = Atomic<Int>(0)
    private let odd = Atomic<Int>(0)

    func begin(_ epoch: Int) {
        if epoch == 0 { even.add(1, ordering: .acquiring) } else { odd.add(1, ordering: .acquiring) }
    }

    func end(_ epoch: Int) {
        if epoch == 0 { even.subtract(1, ordering: .releasing) } else { odd.subtract(1, ordering: .releasing) }
    }

    func count(_ epoch: Int) -> Int {
        epoch == 0 ? even.load(ordering: .acquiring) : odd.load(ordering: .acquiring)
    }
}

/// Why clusters are freed, which decides whether they are also discarded in the file
/// (`pass-discard-*`).
enum Qcow2DiscardReason {
    case request, snapshot, other
}

/// Everything about an open image that changes: L1 and refcount tables, the L2 and
/// refcount block caches, the allocator. Lives behind the driver's mutex.
///
/// Ordering (crash safety), as QEMU's qcow2 cache does it:
/// - a refcount increase reaches the disk before an L2 table that references the cluster
///   (`l2DependsOnRefcounts`; skipped with lazy refcounts once the image is marked dirty);
/// - copy-on-write data reaches the disk before the L2 table that references it
///   (`l2NeedsFileFlush`);
/// - an L2 table that stopped referencing a cluster reaches the disk before the refcount
///   decrease (`refcountsDependOnL2`);
/// - new L2 tables, refcount blocks and refcount tables are written and flushed before the
///   L1 entry, refcount table entry or header field that points to them.
/// At most one of the two cache dependencies is active at a time: setting one first
/// resolves the other.
struct Qcow2Metadata {
    let geometry: Qcow2Geometry
    let source: Qcow2DataSource
    let inFlight: Qcow2InFlightIO
    let passDiscard: (request: Bool, snapshot: Bool, other: Bool)
    let lazyRefcounts: Bool

    var header: Qcow2Header
    var l1: [UInt64]
    var refcountTable: [UInt64]
    var l2Cache: Qcow2TableCache
    var refcountCache: Qcow2TableCache

    private var l2DependsOnRefcounts = false
    private var l2NeedsFileFlush = false
    private var refcountsDependOnL2 = false

    /// No cluster below this one is free (outside the quarantine).
    private var freeClusterIndex: UInt64 = 0
    private(set) var epoch = 0
    private var quarantine: [[UInt64]] = [[], []]
    private var quarantined: Set<UInt64> = []
    private var pendingDiscards: [(offset: UInt64, length: UInt64)] = []
    /// Allocating writes whose data is being written outside the lock.
    var pendingAllocations: [Qcow2PendingAllocation] = []
    /// The header's dirty bit as this driver set it (lazy refcounts) or found it.
    private(set) var isMarkedDirty: Bool
    /// QEMU's metadata-preallocation guess, made once (nil: not yet).
    private var metadataPreallocated: Bool?

    var file: BlockNode { source.file }
    private var clusterSize: UInt64 { geometry.clusterSize }

    init(
        header: Qcow2Header, geometry: Qcow2Geometry, source: Qcow2DataSource, l2CacheEntries: Int,
        refcountCacheEntries: Int, lazyRefcounts: Bool, passDiscard: (request: Bool, snapshot: Bool, other: Bool)
    ) throws(BlockError) {
        self.header = header
        self.geometry = geometry
        self.source = source
        self.inFlight = Qcow2InFlightIO()
        self.lazyRefcounts = lazyRefcounts
        self.passDiscard = passDiscard
        self.isMarkedDirty = header.incompatibleFeatures & Qcow2Header.Incompatible.dirty != 0
        l2Cache = Qcow2TableCache(tableBytes: Int(geometry.sliceBytes), capacity: l2CacheEntries)
        refcountCache = Qcow2TableCache(tableBytes: Int(geometry.clusterSize), capacity: refcountCacheEntries)
        l1 = try Self.readTable(source, at: header.l1TableOffset, entries: Int(header.l1Size))
        refcountTable = try Self.readTable(
            source, at: header.refcountTableOffset, entries: Int(UInt64(header.refcountTableClusters) * geometry.clusterSize / 8))
    }

    private static func readTable(_ source: Qcow2DataSource, at offset: UInt64, entries: Int) throws(BlockError) -> [UInt64] {
        guard entries > 0 else { return [] }
        let bytes = try source.readHost(at: offset, count: entries * 8)
        return bytes.withUnsafeBytes { raw in
            (0..<entries).map { UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
    }

    /// Refcounts must be right on disk at every point (not so with lazy refcounts once the
    /// dirty bit says they may be stale).
    private var needsAccurateRefcounts: Bool { !(lazyRefcounts && isMarkedDirty) }

    // MARK: L2 lookups

    /// The cached L2 slice and index for a guest cluster, nil when no L2 table covers it.
    mutating func l2Location(guestCluster: UInt64) throws(BlockError) -> (slot: Int, index: Int)? {
        let l1Index = Int(guestCluster / geometry.l2Entries)
        guard l1Index < l1.count else { throw geometry.corruption("Guest cluster beyond the L1 table", guestCluster) }
        let entry = l1[l1Index]
        let tableOffset = entry & Qcow2Geometry.offsetMask
        guard tableOffset != 0 else { return nil }
        guard entry & Qcow2Geometry.l1ReservedMask == 0 else {
            throw geometry.corruption("L2 table offset \(hex(entry & ~Qcow2Geometry.copiedFlag)) unaligned (L1 index: \(l1Index))", guestCluster)
        }
        let inTable = guestCluster % geometry.l2Entries
        let sliceOffset = tableOffset + inTable / geometry.sliceEntries * geometry.sliceBytes
        return (try loadL2Slice(at: sliceOffset, guestCluster: guestCluster), Int(inTable % geometry.sliceEntries))
    }

    private mutating func loadL2Slice(at offset: UInt64, guestCluster: UInt64) throws(BlockError) -> Int {
        if let slot = l2Cache.slot(for: offset) { return slot }
        guard offset + geometry.sliceBytes <= (try file.refreshSize()) else {
            throw geometry.corruption("L2 table at \(hex(offset)) lies beyond the end of the file", guestCluster)
        }
        try makeRoomInL2Cache()
        let bytes = try source.readHost(at: offset, count: Int(geometry.sliceBytes))
        return l2Cache.insert(offset: offset, bytes: bytes, isDirty: false)
    }

    /// The state of one guest cluster.
    mutating func clusterState(_ guestCluster: UInt64) throws(BlockError) -> Qcow2ClusterState {
        guard let location = try l2Location(guestCluster: guestCluster) else { return .unallocated }
        return try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index), guestCluster: guestCluster)
    }

    /// How a run of clusters starting at `guestCluster` reads: clusters of the same kind,
    /// with contiguous host data, within one L2 slice, at most `maximum` clusters.
    mutating func run(at guestCluster: UInt64, maximum: UInt64) throws(BlockError) -> (state: Qcow2ClusterState, clusters: UInt64) {
        let sliceEnd = (guestCluster / geometry.sliceEntries + 1) * geometry.sliceEntries
        let limit = min(maximum, sliceEnd - guestCluster)
        guard let location = try l2Location(guestCluster: guestCluster) else {
            // No L2 table: unallocated up to the end of the table's range.
            let tableEnd = (guestCluster / geometry.l2Entries + 1) * geometry.l2Entries
            return (.unallocated, min(maximum, tableEnd - guestCluster))
        }
        let first = try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index), guestCluster: guestCluster)
        if case .compressed = first { return (first, 1) }
        var count: UInt64 = 1
        while count < limit {
            let next = try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index + Int(count)), guestCluster: guestCluster + count)
            guard Self.continues(first, with: next, after: count, clusterSize: clusterSize) else { break }
            count += 1
        }
        return (first, count)
    }

    private static func continues(_ first: Qcow2ClusterState, with next: Qcow2ClusterState, after count: UInt64, clusterSize: UInt64) -> Bool {
        switch (first, next) {
        case (.unallocated, .unallocated), (.zeroPlain, .zeroPlain), (.zeroPlain, .zeroAllocated),
             (.zeroAllocated, .zeroPlain), (.zeroAllocated, .zeroAllocated):
            return true
        case (.normal(let a, let copiedA), .normal(let b, let copiedB)):
            return b == a + count * clusterSize && copiedA == copiedB
        default:
            return false
        }
    }

    // MARK: L2 updates

    /// Like `l2Location`, but the L2 table is this image's alone and may be modified: a
    /// missing table is allocated, a shared one (internal snapshot) copied first.
    mutating func writableL2Location(guestCluster: UInt64) throws(BlockError) -> (slot: Int, index: Int) {
        let l1Index = Int(guestCluster / geometry.l2Entries)
        guard l1Index < l1.count else { throw geometry.corruption("Guest cluster beyond the L1 table", guestCluster) }
        let entry = l1[l1Index]
        let oldOffset = entry & Qcow2Geometry.offsetMask
        if oldOffset == 0 || entry & Qcow2Geometry.copiedFlag == 0 {
            try replaceL2Table(l1Index: l1Index, oldOffset: oldOffset, guestCluster: guestCluster)
        }
        guard let location = try l2Location(guestCluster: guestCluster) else {
            throw geometry.corruption("L2 table vanished", guestCluster)
        }
        return location
    }

    private mutating func replaceL2Table(l1Index: Int, oldOffset: UInt64, guestCluster: UInt64) throws(BlockError) {
        var table = [UInt8](repeating: 0, count: Int(clusterSize))
        if oldOffset != 0 {
            // Copy through the cache: it is the current content.
            for slice in 0..<Int(geometry.l2Entries / geometry.sliceEntries) {
                let sliceOffset = oldOffset + UInt64(slice) * geometry.sliceBytes
                let slot = try loadL2Slice(at: sliceOffset, guestCluster: guestCluster)
                let bytes = l2Cache.bytes(at: slot)
                table.replaceSubrange(slice * bytes.count..<(slice + 1) * bytes.count, with: bytes)
            }
        }
        let newOffset = try allocateClusters(1)
        // The new table's refcount, then the table itself, are durable before L1 points to it.
        do {
            try writeRefcountBlocks()
            try source.writeHost(at: newOffset, table)
            try file.flush()
        } catch {
            try? unallocateClusters(at: newOffset, count: 1)
            throw error
        }
        let newEntry = newOffset | Qcow2Geometry.copiedFlag
        try source.writeHost(at: header.l1TableOffset + UInt64(l1Index) * 8, [UInt8](bigEndian: newEntry))
        try file.flush()
        l1[l1Index] = newEntry
        if oldOffset != 0 {
            for slice in 0..<geometry.l2Entries / geometry.sliceEntries {
                l2Cache.remove(offset: oldOffset + slice * geometry.sliceBytes)
            }
            try addToRefcount(cluster: geometry.clusterIndex(oldOffset), -1, reason: .other)
        }
    }

    mutating func setL2Entry(_ location: (slot: Int, index: Int), _ value: UInt64) {
        l2Cache.setUInt64(slot: location.slot, index: location.index, value)
    }

    /// Call before L2 entries start pointing at freshly allocated clusters.
    mutating func l2WillReferenceNewClusters() throws(BlockError) {
        guard needsAccurateRefcounts else { return }
        if refcountsDependOnL2 {
            refcountsDependOnL2 = false
            try writeL2Cache()
            try file.flush()
        }
        l2DependsOnRefcounts = true
    }

    /// Call after copy-on-write data went to clusters that L2 entries will reference.
    mutating func l2NeedsDataFlushFirst() {
        l2NeedsFileFlush = true
    }

    // MARK: Refcounts

    mutating func refcount(ofCluster cluster: UInt64) throws(BlockError) -> UInt64 {
        let tableIndex = cluster / geometry.refcountBlockEntries
        guard tableIndex < refcountTable.count, refcountTable[Int(tableIndex)] & Qcow2Geometry.refcountTableOffsetMask != 0 else { return 0 }
        let slot = try loadRefcountBlock(tableIndex: Int(tableIndex))
        return refcountCache.refcount(slot: slot, index: Int(cluster % geometry.refcountBlockEntries), order: geometry.refcountOrder)
    }

    private mutating func loadRefcountBlock(tableIndex: Int) throws(BlockError) -> Int {
        let entry = refcountTable[tableIndex]
        let offset = entry & Qcow2Geometry.refcountTableOffsetMask
        if let slot = refcountCache.slot(for: offset) { return slot }
        guard entry & 0x1ff == 0, offset + clusterSize <= (try file.refreshSize()) else {
            throw .system(errno: EIO, operation: "qcow2: Refblock offset \(hex(entry)) invalid (reftable index: \(hex(UInt64(tableIndex))))")
        }
        try makeRoomInRefcountCache()
        let bytes = try source.readHost(at: offset, count: Int(clusterSize))
        return refcountCache.insert(offset: offset, bytes: bytes, isDirty: false)
    }

    /// Adds `delta` (±1) to a cluster's refcount. A cluster that drops to 0 is quarantined
    /// (see `Qcow2InFlightIO`) and, if the reason allows, discarded in the file.
    mutating func addToRefcount(cluster: UInt64, _ delta: Int, reason: Qcow2DiscardReason) throws(BlockError) {
        if delta < 0 { try refcountsWillDrop() }
        let tableIndex = Int(cluster / geometry.refcountBlockEntries)
        guard tableIndex < refcountTable.count, refcountTable[tableIndex] & Qcow2Geometry.refcountTableOffsetMask != 0 else {
            throw .system(errno: EIO, operation: "qcow2: no refcount block for cluster \(hex(cluster))")
        }
        let slot = try loadRefcountBlock(tableIndex: tableIndex)
        let index = Int(cluster % geometry.refcountBlockEntries)
        let old = refcountCache.refcount(slot: slot, index: index, order: geometry.refcountOrder)
        if delta < 0 {
            guard old > 0 else { throw .system(errno: EIO, operation: "qcow2: refcount underflow for cluster \(hex(cluster))") }
        } else {
            guard old < geometry.maximumRefcount else { throw .system(errno: ERANGE, operation: "qcow2: refcount overflow for cluster \(hex(cluster))") }
        }
        let new = delta < 0 ? old - 1 : old + 1
        refcountCache.setRefcount(slot: slot, index: index, order: geometry.refcountOrder, new)
        if new == 0 { clusterFreed(cluster, reason: reason) }
    }

    /// Call before refcounts drop for clusters that L2 entries stopped pointing at.
    private mutating func refcountsWillDrop() throws(BlockError) {
        if l2DependsOnRefcounts {
            l2DependsOnRefcounts = false
            try writeRefcountBlocks()
            try file.flush()
        }
        refcountsDependOnL2 = true
    }

    private mutating func clusterFreed(_ cluster: UInt64, reason: Qcow2DiscardReason) {
        quarantine[epoch].append(cluster)
        quarantined.insert(cluster)
        let pass = switch reason {
        case .request: passDiscard.request
        case .snapshot: passDiscard.snapshot
        case .other: passDiscard.other
        }
        guard pass else { return }
        let offset = cluster << UInt64(geometry.clusterBits)
        if let last = pendingDiscards.last, last.offset + last.length == offset {
            pendingDiscards[pendingDiscards.count - 1].length += clusterSize
        } else {
            pendingDiscards.append((offset, clusterSize))
        }
    }

    /// Frees whatever host clusters an L2 entry held.
    mutating func release(_ state: Qcow2ClusterState, reason: Qcow2DiscardReason) throws(BlockError) {
        switch state {
        case .normal(let host, _), .zeroAllocated(let host, _):
            try addToRefcount(cluster: geometry.clusterIndex(host), -1, reason: reason)
        case .compressed(let offset, let sectors):
            // QEMU's accounting: the sectors from the one holding the start.
            let start = offset & ~511
            let end = start + sectors * 512
            for cluster in geometry.clusterIndex(start)...geometry.clusterIndex(end - 1) {
                try addToRefcount(cluster: cluster, -1, reason: reason)
            }
        case .unallocated, .zeroPlain:
            break
        }
    }

    /// Punches holes for freed clusters (after the metadata update that freed them).
    mutating func processDiscards() {
        let discards = pendingDiscards
        pendingDiscards.removeAll()
        if !discards.isEmpty { source.fileDataExtent.forget() }
        for discard in discards {
            // A hint: failures do not fail the request.
            try? file.discard(at: discard.offset, length: discard.length)
        }
    }

    // MARK: Metadata preallocation

    /// Whether the image looks metadata-preallocated: clusters in use (refcount > 0) exceed
    /// what the file really has allocated by QEMU's margin (a ninth, at least two clusters).
    /// Then data clusters may be holes in the file, and block status asks the file about
    /// them. QEMU decides this once, at the first block-status query of the node, and so
    /// does this driver; a failure counts as no.
    mutating func isMetadataPreallocated() -> Bool {
        if let known = metadataPreallocated { return known }
        let detected = (try? detectMetadataPreallocation()) ?? false
        metadataPreallocated = detected
        return detected
    }

    private mutating func detectMetadataPreallocation() throws(BlockError) -> Bool {
        let fileLength = try file.refreshSize()
        guard let allocated = file.driver.allocatedSize() else { return false }
        let realClusters = allocated / clusterSize
        let threshold = max(realClusters * 10 / 9, realClusters + 2)
        let endCluster = geometry.clusterCount(bytes: fileLength)
        var inUse: UInt64 = 0
        var block: UInt64 = 0
        // Refcount block by refcount block, up to the end of the file or the threshold.
        while block * geometry.refcountBlockEntries < endCluster && inUse < threshold && Int(block) < refcountTable.count {
            defer { block += 1 }
            guard refcountTable[Int(block)] & Qcow2Geometry.refcountTableOffsetMask != 0 else { continue }
            let slot = try loadRefcountBlock(tableIndex: Int(block))
            let first = block * geometry.refcountBlockEntries
            let count = min(geometry.refcountBlockEntries, endCluster - first)
            for index in 0..<Int(count) where refcountCache.refcount(slot: slot, index: index, order: geometry.refcountOrder) != 0 {
                // Clusters of allocations in flight may not be in the file yet: not counted.
                let cluster = first + UInt64(index)
                if pendingAllocations.contains(where: { $0.hostClusters.contains(cluster) }) { continue }
                inUse += 1
                if inUse >= threshold { break }
            }
        }
        return inUse >= threshold
    }

    // MARK: Allocation

    /// Allocates `count` contiguous host clusters (refcount 1 each); returns the byte offset.
    mutating func allocateClusters(_ count: UInt64) throws(BlockError) -> UInt64 {
        releaseQuarantine()
        var attempts = 0
        while true {
            attempts += 1
            guard attempts < 64 else { throw .system(errno: EIO, operation: "qcow2: cannot allocate clusters") }
            let start = try findFreeClusters(count)
            let lastBlock = (start + count - 1) / geometry.refcountBlockEntries
            var structuresChanged = false
            for tableIndex in start / geometry.refcountBlockEntries...lastBlock {
                if tableIndex >= refcountTable.count {
                    try growRefcountTable(keepingFree: start + count)
                    structuresChanged = true
                    break
                }
                if refcountTable[Int(tableIndex)] & Qcow2Geometry.refcountTableOffsetMask == 0 {
                    try createRefcountBlock(tableIndex: tableIndex, depth: 0)
                    structuresChanged = true
                    break
                }
            }
            // New refcount structures may have taken clusters of the run: look again.
            if structuresChanged { continue }
            for cluster in start..<start + count {
                try addToRefcount(cluster: cluster, 1, reason: .other)
            }
            if freeClusterIndex == start { freeClusterIndex = start + count }
            return start << UInt64(geometry.clusterBits)
        }
    }

    /// Gives back clusters that `allocateClusters` returned when the write that needed them
    /// failed (no space left in the file): nothing references them, so they are free again
    /// at once, with no quarantine and no write ordering. A refcount already written out
    /// stays a harmless leak until the next write-back.
    mutating func unallocateClusters(at offset: UInt64, count: UInt64) throws(BlockError) {
        let first = geometry.clusterIndex(offset)
        for cluster in first..<first + count {
            let slot = try loadRefcountBlock(tableIndex: Int(cluster / geometry.refcountBlockEntries))
            let index = Int(cluster % geometry.refcountBlockEntries)
            let old = refcountCache.refcount(slot: slot, index: index, order: geometry.refcountOrder)
            guard old > 0 else { throw .system(errno: EIO, operation: "qcow2: refcount underflow for cluster \(hex(cluster))") }
            refcountCache.setRefcount(slot: slot, index: index, order: geometry.refcountOrder, old - 1)
        }
        freeClusterIndex = min(freeClusterIndex, first)
    }

    private mutating func findFreeClusters(_ count: UInt64) throws(BlockError) -> UInt64 {
        let limit = UInt64(1) << UInt64(Qcow2Header.Limit.hostOffsetBits - geometry.clusterBits)
        var start = freeClusterIndex
        var length: UInt64 = 0
        var firstFree: UInt64?
        var cluster = freeClusterIndex
        while length < count {
            guard cluster < limit else { throw .noSpace }
            if !quarantined.contains(cluster), try refcount(ofCluster: cluster) == 0 {
                if firstFree == nil { firstFree = cluster }
                if length == 0 { start = cluster }
                length += 1
            } else {
                length = 0
            }
            cluster += 1
        }
        freeClusterIndex = firstFree ?? start
        return start
    }

    /// Quarantined clusters become free once no request that started before they were
    /// freed is still running.
    private mutating func releaseQuarantine() {
        for _ in 0..<2 {
            let previous = 1 - epoch
            guard inFlight.count(previous) == 0 else { return }
            for cluster in quarantine[previous] {
                quarantined.remove(cluster)
                freeClusterIndex = min(freeClusterIndex, cluster)
            }
            quarantine[previous].removeAll()
            guard !quarantine[epoch].isEmpty else { return }
            epoch = previous
        }
    }

    /// Creates the refcount block for `tableIndex` (which the table has room for).
    private mutating func createRefcountBlock(tableIndex: UInt64, depth: Int) throws(BlockError) {
        guard depth < 8 else { throw .system(errno: EIO, operation: "qcow2: cannot place a refcount block") }
        let candidate = try findFreeClusters(1)
        let candidateIndex = candidate / geometry.refcountBlockEntries
        var block = [UInt8](repeating: 0, count: Int(clusterSize))
        var countedElsewhere = false
        if candidateIndex == tableIndex {
            // The block describes itself.
            block.withUnsafeMutableBytes {
                Qcow2TableCache.setRefcount(in: $0, index: Int(candidate % geometry.refcountBlockEntries), order: geometry.refcountOrder, 1)
            }
        } else if candidateIndex < refcountTable.count, refcountTable[Int(candidateIndex)] & Qcow2Geometry.refcountTableOffsetMask != 0 {
            try addToRefcount(cluster: candidate, 1, reason: .other)
            countedElsewhere = true
        } else {
            // The candidate's own range has no block yet: that one first (it will describe
            // itself), then this one.
            try createRefcountBlock(tableIndex: candidateIndex, depth: depth + 1)
            return try createRefcountBlock(tableIndex: tableIndex, depth: depth + 1)
        }
        let offset = candidate << UInt64(geometry.clusterBits)
        do {
            if countedElsewhere { try writeRefcountBlocks() }
            try source.writeHost(at: offset, block)
            try file.flush()
        } catch {
            // No space for the block (a fixed-size file): its cluster must not leak.
            if countedElsewhere { try? unallocateClusters(at: offset, count: 1) }
            throw error
        }
        try source.writeHost(at: header.refcountTableOffset + tableIndex * 8, [UInt8](bigEndian: offset))
        try file.flush()
        refcountTable[Int(tableIndex)] = offset
    }

    /// Replaces the refcount table by a larger one, placed with new refcount blocks (which
    /// cover it and themselves) past everything in use and past cluster `keepingFree - 1`.
    private mutating func growRefcountTable(keepingFree: UInt64) throws(BlockError) {
        let perBlock = geometry.refcountBlockEntries
        let oldEntries = UInt64(refcountTable.count)
        let areaStart = max(oldEntries * perBlock, keepingFree)
        var tableClusters: UInt64 = 1
        var blockCount: UInt64 = 0
        var entries = oldEntries
        while true {
            let areaEnd = areaStart + tableClusters + blockCount
            let needed = (areaEnd + perBlock - 1) / perBlock
            // Room to grow before the next replacement.
            let newEntries = max(needed + needed / 2, oldEntries + 1)
            let newTableClusters = geometry.clusterCount(bytes: newEntries * 8)
            let newBlockCount = needed - oldEntries
            if newTableClusters == tableClusters && newBlockCount == blockCount {
                entries = newTableClusters * clusterSize / 8
                break
            }
            tableClusters = newTableClusters
            blockCount = newBlockCount
        }
        guard tableClusters * clusterSize <= Qcow2Header.Limit.refcountTableBytes else { throw .noSpace }
        let blocksStart = areaStart + tableClusters
        let areaEnd = blocksStart + blockCount
        var newTable = refcountTable + [UInt64](repeating: 0, count: Int(entries - oldEntries))
        for block in 0..<blockCount {
            let tableIndex = oldEntries + block
            newTable[Int(tableIndex)] = (blocksStart + block) << UInt64(geometry.clusterBits)
            var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
            let first = max(areaStart, tableIndex * perBlock)
            let last = min(areaEnd, (tableIndex + 1) * perBlock)
            bytes.withUnsafeMutableBytes { raw in
                for cluster in first..<max(first, last) {
                    Qcow2TableCache.setRefcount(in: raw, index: Int(cluster % perBlock), order: geometry.refcountOrder, 1)
                }
            }
            try source.writeHost(at: (blocksStart + block) << UInt64(geometry.clusterBits), bytes)
        }
        let tableOffset = areaStart << UInt64(geometry.clusterBits)
        try source.writeHost(at: tableOffset, newTable.flatMap { [UInt8](bigEndian: $0) })
        try file.flush()
        // Offset and size change in one write.
        try source.writeHost(
            at: Qcow2Header.Field.refcountTableOffset,
            [UInt8](bigEndian: tableOffset) + [UInt8](bigEndian: UInt32(tableClusters)))
        try file.flush()
        let oldOffset = header.refcountTableOffset
        let oldClusters = UInt64(header.refcountTableClusters)
        header.refcountTableOffset = tableOffset
        header.refcountTableClusters = UInt32(tableClusters)
        refcountTable = newTable
        for cluster in geometry.clusterIndex(oldOffset)..<geometry.clusterIndex(oldOffset) + oldClusters {
            try addToRefcount(cluster: cluster, -1, reason: .other)
        }
    }

    // MARK: Writing back

    private mutating func makeRoomInL2Cache() throws(BlockError) {
        guard let victim = l2Cache.evictionCandidate else { return }
        if victim.isDirty { try writeL2Slices([victim.offset]) }
        l2Cache.remove(offset: victim.offset)
    }

    private mutating func makeRoomInRefcountCache() throws(BlockError) {
        guard let victim = refcountCache.evictionCandidate else { return }
        if victim.isDirty { try writeRefcountBlocks() }
        refcountCache.remove(offset: victim.offset)
    }

    /// Writes every dirty L2 slice, after what they depend on.
    mutating func writeL2Cache() throws(BlockError) {
        try writeL2Slices(l2Cache.dirtyOffsets)
    }

    private mutating func writeL2Slices(_ offsets: [UInt64]) throws(BlockError) {
        guard !offsets.isEmpty else { return }
        if l2DependsOnRefcounts {
            l2DependsOnRefcounts = false
            try writeRefcountBlocks()
            try file.flush()
            l2NeedsFileFlush = false
        }
        if l2NeedsFileFlush {
            try file.flush()
            l2NeedsFileFlush = false
        }
        for offset in offsets {
            guard let slot = l2Cache.slot(for: offset) else { continue }
            try source.writeHost(at: offset, l2Cache.bytes(at: slot))
            l2Cache.markClean(offset)
        }
    }

    /// Writes every dirty refcount block, after what they depend on.
    mutating func writeRefcountBlocks() throws(BlockError) {
        let offsets = refcountCache.dirtyOffsets
        guard !offsets.isEmpty else { return }
        if refcountsDependOnL2 {
            refcountsDependOnL2 = false
            try writeL2Cache()
            try file.flush()
        }
        for offset in offsets {
            guard let slot = refcountCache.slot(for: offset) else { continue }
            try source.writeHost(at: offset, refcountCache.bytes(at: slot))
            refcountCache.markClean(offset)
        }
    }

    /// Writes all cached metadata (the caller then flushes the file).
    mutating func writeBack() throws(BlockError) {
        try writeL2Cache()
        try writeRefcountBlocks()
    }

    // MARK: Header

    /// Sets or clears the dirty bit (lazy refcounts), durably.
    mutating func setDirty(_ dirty: Bool) throws(BlockError) {
        guard dirty != isMarkedDirty else { return }
        if !dirty { try writeBack() }
        try file.flush()
        var features = header.incompatibleFeatures
        if dirty { features |= Qcow2Header.Incompatible.dirty } else { features &= ~Qcow2Header.Incompatible.dirty }
        try source.writeHost(at: Qcow2Header.Field.incompatibleFeatures, [UInt8](bigEndian: features))
        try file.flush()
        header.incompatibleFeatures = features
        isMarkedDirty = dirty
    }

    /// Before the first allocation with lazy refcounts: the dirty bit goes on.
    mutating func prepareAllocation() throws(BlockError) {
        if lazyRefcounts && !isMarkedDirty { try setDirty(true) }
    }
}
