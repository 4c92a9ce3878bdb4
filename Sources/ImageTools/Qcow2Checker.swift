import BlockCore
import BlockDrivers

/// `qemu-img check` for qcow2: counts the references to every host cluster (header, active
/// and snapshot L1/L2 tables and data, snapshot table, refcount table and blocks) and
/// compares them with the stored refcounts, then checks the COPIED flags of the active
/// tables. Messages and counts follow QEMU's check, in its order.
struct Qcow2Checker {
    private let image: Qcow2Image
    private var result: ImageCheckResult
    /// References counted per host cluster; grows for references past the end of the file.
    private var references: [UInt64]
    private var refcountTable: [UInt64] = []
    private var refcountBlocks: [UInt64: [UInt8]] = [:]

    private var clusterSize: UInt64 { image.clusterSize }

    static func check(_ image: Qcow2Image, filename: String) throws(BlockError) -> ImageCheckResult {
        var checker = Qcow2Checker(image: image, filename: filename)
        try checker.run()
        return checker.result
    }

    private init(image: Qcow2Image, filename: String) {
        self.image = image
        result = ImageCheckResult(filename: filename, format: "qcow2")
        references = [UInt64](repeating: 0, count: Int((image.file.size + image.clusterSize - 1) / image.clusterSize))
        result.totalClusters = (image.header.size + image.clusterSize - 1) / image.clusterSize
    }

    private mutating func run() throws(BlockError) {
        refcountTable = try image.readRefcountTable()
        let snapshotTable = try Qcow2Snapshot.readTable(from: image.file, at: image.header.snapshotsOffset, count: Int(image.header.snapshotCount))

        countReferences(offset: 0, length: clusterSize)
        let l1 = try image.readL1()
        try countTableReferences(l1: l1, at: image.header.l1TableOffset, countingFragments: true)
        for snapshot in snapshotTable.snapshots {
            if snapshot.l1TableOffset % clusterSize != 0 {
                report("ERROR snapshot \(snapshot.id) (\(snapshot.name)) l1_offset=\(hex(snapshot.l1TableOffset)): L1 table is not cluster aligned; snapshot table entry corrupted")
                continue
            }
            if UInt64(snapshot.l1Size) * 8 > Qcow2Header.Limit.l1Bytes {
                report("ERROR snapshot \(snapshot.id) (\(snapshot.name)) l1_size=\(hex(UInt64(snapshot.l1Size))): L1 table is too large; snapshot table entry corrupted")
                continue
            }
            let table = try image.file.readEntries(at: snapshot.l1TableOffset, count: Int(snapshot.l1Size))
            try countTableReferences(l1: table, at: snapshot.l1TableOffset, countingFragments: false)
        }
        countReferences(offset: image.header.snapshotsOffset, length: snapshotTable.bytes)
        countReferences(offset: image.header.refcountTableOffset, length: UInt64(refcountTable.count) * 8)
        try checkRefcountBlocks()
        try compareRefcounts()
        try checkCopiedFlags(l1: l1)
    }

    private mutating func report(_ message: String, corruption: Bool = true) {
        result.messages.append(message)
        if corruption { result.corruptions += 1 }
    }

    // MARK: Counting references

    /// One more reference to every cluster the byte range touches.
    private mutating func countReferences(offset: UInt64, length: UInt64) {
        guard length > 0 else { return }
        // The last cluster may be partly past the end of the file, not more.
        if offset + length >= image.file.size + clusterSize {
            report("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset \(hex(offset)) size \(hex(length))")
            return
        }
        for cluster in offset / clusterSize...(offset + length - 1) / clusterSize {
            if cluster >= references.count { references += [UInt64](repeating: 0, count: Int(cluster) + 1 - references.count) }
            references[Int(cluster)] += 1
        }
    }

    private mutating func countTableReferences(l1: [UInt64], at offset: UInt64, countingFragments: Bool) throws(BlockError) {
        countReferences(offset: offset, length: UInt64(l1.count) * 8)
        for entry in l1 {
            let l2Offset = entry & Qcow2Geometry.offsetMask
            guard l2Offset != 0 else { continue }
            if entry & Qcow2Geometry.l1ReservedMask != 0 {
                report("ERROR found L1 entry with reserved bits set: \(String(entry, radix: 16))")
            }
            countReferences(offset: l2Offset, length: clusterSize)
            try countL2References(at: l2Offset, countingFragments: countingFragments)
        }
    }

    private mutating func countL2References(at offset: UInt64, countingFragments: Bool) throws(BlockError) {
        let entries = try image.file.readEntries(at: offset, count: image.l2Entries)
        var nextContiguous: UInt64 = 0
        let offsetBits = UInt64(62 - (image.clusterBits - 8))
        for entry in entries {
            if entry & Qcow2Geometry.compressedFlag != 0 {
                if entry & Qcow2Geometry.copiedFlag != 0 {
                    report("ERROR: coffset=\(hex(entry & ((1 << offsetBits) - 1))): copied flag must never be set for compressed clusters")
                }
                let descriptor = entry & ~(Qcow2Geometry.copiedFlag | Qcow2Geometry.compressedFlag)
                let start = descriptor & ((1 << offsetBits) - 1)
                let sectors = (descriptor >> offsetBits) + 1
                countReferences(offset: start, length: sectors * 512 - (start & 511))
                if countingFragments {
                    result.allocatedClusters += 1
                    result.compressedClusters += 1
                    // Compressed clusters share sectors: always counted as fragmented.
                    result.fragmentedClusters += 1
                }
                continue
            }
            if entry & Qcow2Geometry.l2ReservedMask != 0 {
                report("ERROR found l2 entry with reserved bits set: \(String(entry, radix: 16))")
            }
            let host = entry & Qcow2Geometry.offsetMask
            guard host != 0 else { continue }
            if countingFragments {
                result.allocatedClusters += 1
                if nextContiguous != 0 && host != nextContiguous { result.fragmentedClusters += 1 }
                nextContiguous = host + clusterSize
            }
            countReferences(offset: host, length: clusterSize)
        }
    }

    private mutating func checkRefcountBlocks() throws(BlockError) {
        for (index, entry) in refcountTable.enumerated() {
            if entry & 0x1ff != 0 {
                report("ERROR refcount table entry \(index) has reserved bits set")
                continue
            }
            guard entry != 0 else { continue }
            let cluster = entry / clusterSize
            if cluster >= references.count {
                report("ERROR refcount block \(index) is outside image")
                continue
            }
            countReferences(offset: entry, length: clusterSize)
            if references[Int(cluster)] != 1 {
                report("ERROR refcount block \(index) refcount=\(references[Int(cluster)])")
            }
        }
    }

    // MARK: Comparing

    /// The refcount stored in the image (0 where no block covers the cluster).
    private mutating func storedRefcount(_ cluster: UInt64) throws(BlockError) -> UInt64 {
        let tableIndex = Int(cluster / image.refcountBlockEntries)
        guard tableIndex < refcountTable.count else { return 0 }
        let blockOffset = refcountTable[tableIndex] & Qcow2Geometry.refcountTableOffsetMask
        guard blockOffset != 0 else { return 0 }
        if refcountBlocks[blockOffset] == nil {
            refcountBlocks[blockOffset] = try image.file.read(at: blockOffset, count: Int(clusterSize))
        }
        return refcountBlocks[blockOffset]!.withUnsafeBytes {
            Qcow2TableCache.refcount(in: $0, index: Int(cluster % image.refcountBlockEntries), order: image.header.refcountOrder)
        }
    }

    private mutating func compareRefcounts() throws(BlockError) {
        var highest: UInt64 = 0
        for cluster in 0..<UInt64(references.count) {
            let stored = try storedRefcount(cluster)
            let counted = references[Int(cluster)]
            if stored > 0 || counted > 0 { highest = cluster }
            guard stored != counted else { continue }
            if stored < counted {
                report("ERROR cluster \(cluster) refcount=\(stored) reference=\(counted)")
            } else {
                report("Leaked cluster \(cluster) refcount=\(stored) reference=\(counted)", corruption: false)
                result.leaks += 1
            }
        }
        result.imageEndOffset = (highest + 1) * clusterSize
    }

    /// COPIED must be set exactly on entries whose cluster has refcount 1.
    private mutating func checkCopiedFlags(l1: [UInt64]) throws(BlockError) {
        for (index, entry) in l1.enumerated() {
            let l2Offset = entry & Qcow2Geometry.offsetMask
            guard l2Offset != 0 else { continue }
            let refcount = try storedRefcount(l2Offset / clusterSize)
            if (refcount == 1) != (entry & Qcow2Geometry.copiedFlag != 0) {
                report("ERROR OFLAG_COPIED L2 cluster: l1_index=\(index) l1_entry=\(String(entry, radix: 16)) refcount=\(refcount)")
            }
            for l2Entry in try image.file.readEntries(at: l2Offset, count: image.l2Entries) {
                let host = l2Entry & Qcow2Geometry.offsetMask
                guard l2Entry & Qcow2Geometry.compressedFlag == 0, host != 0 else { continue }
                let dataRefcount = try storedRefcount(host / clusterSize)
                if (dataRefcount == 1) != (l2Entry & Qcow2Geometry.copiedFlag != 0) {
                    report("ERROR OFLAG_COPIED data cluster: l2_entry=\(String(l2Entry, radix: 16)) refcount=\(dataRefcount)")
                }
            }
        }
    }

    private func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}
