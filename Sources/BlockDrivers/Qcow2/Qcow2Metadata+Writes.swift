import BlockCore

/// One step of a guest write, decided under the metadata lock.
enum Qcow2WriteStep {
    /// `length` bytes go in place to `host`, outside the lock; call `Qcow2InFlightIO.end(epoch)` after.
    case inPlace(host: UInt64, length: UInt64, epoch: Int)
    /// New clusters were allocated: write their data outside the lock
    /// (`Qcow2DataSource.writeAllocation`), then `finishAllocation` under it.
    case allocate(Qcow2Allocation)
    /// An allocating write in flight covers some of the clusters: wait for it, then retry.
    case wait(Qcow2AllocationGate)
}

extension Qcow2Metadata {
    /// Decides the next step of a write of `data` at guest `position`: in place when the
    /// first cluster is this image's alone, else a run of clusters is allocated, whose data
    /// (with the parts of the first and last cluster the write does not cover) the caller
    /// writes outside the lock.
    mutating func writeStep(at position: UInt64, data: UnsafeRawBufferPointer) throws(BlockError) -> Qcow2WriteStep {
        let guestCluster = geometry.clusterIndex(position)
        let inCluster = geometry.offsetInCluster(position)
        let clusters = geometry.clusterCount(bytes: inCluster + UInt64(data.count))
        if let gate = gateOfAllocation(overlapping: guestCluster..<guestCluster + clusters) { return .wait(gate) }
        let (state, run) = try run(at: guestCluster, maximum: clusters)
        if case .normal(let host, true) = state {
            inFlight.begin(epoch)
            return .inPlace(host: host + inCluster, length: min(UInt64(data.count), run * geometry.clusterSize - inCluster), epoch: epoch)
        }
        return .allocate(try beginAllocation(at: position, length: UInt64(data.count)))
    }

    /// Allocates host clusters for the first allocating run of a write of `length` bytes at
    /// `position`, and records the run as in flight until `finishAllocation`.
    private mutating func beginAllocation(at position: UInt64, length: UInt64) throws(BlockError) -> Qcow2Allocation {
        try prepareAllocation()
        let clusterSize = geometry.clusterSize
        let first = geometry.clusterIndex(position)
        let inCluster = geometry.offsetInCluster(position)
        let location = try writableL2Location(guestCluster: first)

        // The run: clusters that need a new host cluster, within one L2 slice.
        let sliceEnd = (first / geometry.sliceEntries + 1) * geometry.sliceEntries
        let wanted = min(geometry.clusterCount(bytes: inCluster + length), sliceEnd - first)
        var old: [Qcow2ClusterState] = []
        for index in 0..<wanted {
            let state = try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index + Int(index)), guestCluster: first + index)
            if state.isWritableInPlace { break }
            if case .zeroAllocated(_, true) = state {
                // A preallocated cluster of its own is reused, alone.
                if index == 0 { old.append(state) }
                break
            }
            old.append(state)
        }
        let count = UInt64(old.count)
        let runStart = first * clusterSize
        let dataEnd = min(position + length, runStart + count * clusterSize)
        let tailLength = runStart + count * clusterSize - dataEnd
        // QEMU's zero test of the copy-on-write regions is a block-status query.
        if inCluster + tailLength > 0 { _ = isMetadataPreallocated() }
        let fileEnd = file.size
        let host: UInt64
        var reused = false
        if case .zeroAllocated(let reusedHost, true) = old[0] {
            host = reusedHost
            reused = true
        } else {
            host = try allocateClusters(count)
        }
        pendingAllocations.append(Qcow2PendingAllocation(
            clusters: first..<first + count,
            hostClusters: reused ? 0..<0 : geometry.clusterIndex(host)..<geometry.clusterIndex(host) + count))
        inFlight.begin(epoch)
        return Qcow2Allocation(
            host: host, isReused: reused, old: old, firstGuestCluster: first, position: position, dataEnd: dataEnd,
            headLength: inCluster, tailLength: tailLength, fileEnd: fileEnd, epoch: epoch)
    }

    /// Ends an allocation's time in flight (with `finishAllocation`, in the same locked
    /// section); returns the gate of the requests waiting for it, to open once the lock is
    /// released.
    mutating func endPendingAllocation(_ allocation: Qcow2Allocation) -> Qcow2AllocationGate? {
        guard let index = pendingAllocations.firstIndex(where: { $0.clusters.lowerBound == allocation.firstGuestCluster }) else {
            preconditionFailure("qcow2: finishing an allocation that is not in flight")
        }
        inFlight.end(allocation.epoch)
        return pendingAllocations.remove(at: index).gate
    }

    /// Points the L2 entries at an allocation whose data is written (`dataNeedsFlush`: the
    /// data must be durable before L2 points to it), or gives its clusters back when the
    /// data write failed (`dataNeedsFlush` nil).
    mutating func finishAllocation(_ allocation: Qcow2Allocation, dataNeedsFlush: Bool?) throws(BlockError) {
        let count = UInt64(allocation.old.count)
        guard let dataNeedsFlush else {
            // Typically ENOSPC from a fixed-size file: nothing points at the new clusters
            // yet, so giving them back leaves the image as it was (no leak), and a retry
            // once the file has grown allocates the same clusters again.
            if !allocation.isReused { try? unallocateClusters(at: allocation.host, count: count) }
            return
        }
        if dataNeedsFlush { l2NeedsDataFlushFirst() }
        if !allocation.isReused { try l2WillReferenceNewClusters() }
        let location = try writableL2Location(guestCluster: allocation.firstGuestCluster)
        for index in 0..<Int(count) {
            setL2Entry((location.slot, location.index + index), (allocation.host + UInt64(index) * geometry.clusterSize) | Qcow2Geometry.copiedFlag)
        }
        if !allocation.isReused {
            for state in allocation.old { try release(state, reason: .other) }
        }
        processDiscards()
    }

    /// The gate of an allocating write in flight over any of `clusters`, for the caller to
    /// wait on; nil when there is none.
    mutating func gateOfAllocation(overlapping clusters: Range<UInt64>) -> Qcow2AllocationGate? {
        guard let index = pendingAllocations.firstIndex(where: { $0.clusters.overlaps(clusters) }) else { return nil }
        let gate = pendingAllocations[index].gate ?? Qcow2AllocationGate()
        pendingAllocations[index].gate = gate
        return gate
    }

    /// Makes whole clusters read as zeroes: the zero flag (v3), or deallocation (v2 without
    /// a backing file). With `unmap` host clusters are freed, else kept (preallocated).
    /// Returns false when the image cannot do it (v2 with a backing file). As in QEMU, L2
    /// tables are allocated for the range even where nothing changes.
    mutating func zeroClusters(from first: UInt64, count: UInt64, unmap: Bool) throws(BlockError) -> Bool {
        let hasZeroFlag = geometry.supportsZeroFlag
        if !hasZeroFlag && source.backing != nil { return false }
        for cluster in first..<first + count {
            let location = try writableL2Location(guestCluster: cluster)
            let old = try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index), guestCluster: cluster)
            let new: UInt64
            var keepsHostCluster = false
            switch old {
            case .zeroPlain where hasZeroFlag:
                continue
            case .unallocated where !hasZeroFlag:
                continue
            case .normal(let host, let copied) where hasZeroFlag && !unmap,
                 .zeroAllocated(let host, let copied) where hasZeroFlag && !unmap:
                if case .zeroAllocated = old { continue }
                new = host | (copied ? Qcow2Geometry.copiedFlag : 0) | Qcow2Geometry.zeroFlag
                keepsHostCluster = true
            default:
                new = hasZeroFlag ? Qcow2Geometry.zeroFlag : 0
            }
            setL2Entry(location, new)
            if !keepsHostCluster { try release(old, reason: .request) }
        }
        processDiscards()
        return true
    }

    /// Discards whole clusters: they read as zeroes afterwards on v3 images (unallocated on
    /// v2), and their host clusters are freed. As in QEMU, L2 tables are allocated for the
    /// range even where nothing changes. The caller leaves v2 images with a backing file
    /// alone: discarding would expose the backing file's data.
    mutating func discardClusters(from first: UInt64, count: UInt64) throws(BlockError) {
        let hasZeroFlag = geometry.supportsZeroFlag
        for cluster in first..<first + count {
            let location = try writableL2Location(guestCluster: cluster)
            let old = try geometry.state(of: l2Cache.uint64(slot: location.slot, index: location.index), guestCluster: cluster)
            let new: UInt64
            switch old {
            case .zeroPlain:
                continue
            case .unallocated:
                guard hasZeroFlag && source.backing != nil else { continue }
                new = Qcow2Geometry.zeroFlag
            default:
                new = hasZeroFlag ? Qcow2Geometry.zeroFlag : 0
            }
            setL2Entry(location, new)
            try release(old, reason: .request)
        }
        processDiscards()
    }
}
