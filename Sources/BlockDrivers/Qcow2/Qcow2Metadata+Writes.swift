import BlockCore

/// One step of a guest write, decided under the metadata lock.
enum Qcow2WriteStep {
    /// The step is done: `length` bytes went to newly allocated clusters.
    case written(length: UInt64)
    /// `length` bytes go in place to `host`, outside the lock; call `Qcow2InFlightIO.end(epoch)` after.
    case inPlace(host: UInt64, length: UInt64, epoch: Int)
}

extension Qcow2Metadata {
    /// Decides the next step of a write of `data` at guest `position`: in place when the
    /// first cluster is this image's alone, else allocates and writes a run of clusters
    /// (copying the parts of the first and last cluster the write does not cover).
    mutating func writeStep(at position: UInt64, data: UnsafeRawBufferPointer) throws(BlockError) -> Qcow2WriteStep {
        let guestCluster = geometry.clusterIndex(position)
        let inCluster = geometry.offsetInCluster(position)
        let clusters = geometry.clusterCount(bytes: inCluster + UInt64(data.count))
        let (state, run) = try run(at: guestCluster, maximum: clusters)
        if case .normal(let host, true) = state {
            inFlight.begin(epoch)
            return .inPlace(host: host + inCluster, length: min(UInt64(data.count), run * geometry.clusterSize - inCluster), epoch: epoch)
        }
        return .written(length: try allocatingWrite(at: position, data: data))
    }

    /// Does one allocating step of a write; returns how many bytes of `data` it wrote.
    private mutating func allocatingWrite(at position: UInt64, data: UnsafeRawBufferPointer) throws(BlockError) -> UInt64 {
        try prepareAllocation()
        let clusterSize = geometry.clusterSize
        let first = geometry.clusterIndex(position)
        let inCluster = geometry.offsetInCluster(position)
        var location = try writableL2Location(guestCluster: first)

        // The run: clusters that need a new host cluster, within one L2 slice.
        let sliceEnd = (first / geometry.sliceEntries + 1) * geometry.sliceEntries
        let wanted = min(geometry.clusterCount(bytes: inCluster + UInt64(data.count)), sliceEnd - first)
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
        var reused: UInt64?
        if case .zeroAllocated(let host, true) = old[0] { reused = host }

        let runStart = first * clusterSize
        let dataEnd = min(position + UInt64(data.count), runStart + count * clusterSize)
        let headLength = inCluster
        let tailLength = runStart + count * clusterSize - dataEnd
        let fileEnd = file.size
        let host: UInt64
        if let reused { host = reused } else { host = try allocateClusters(count) }
        do {
            try writeAllocatedData(
                at: host, old: old, firstGuestCluster: first, runStart: runStart, dataEnd: dataEnd,
                payload: UnsafeRawBufferPointer(rebasing: data[..<Int(dataEnd - position)]),
                headLength: headLength, tailLength: tailLength, fileEnd: fileEnd)
        } catch {
            // Typically ENOSPC from a fixed-size file: nothing points at the new clusters
            // yet, so giving them back leaves the image as it was (no leak), and a retry
            // once the file has grown allocates the same clusters again.
            if reused == nil { try? unallocateClusters(at: host, count: count) }
            throw error
        }

        if reused == nil { try l2WillReferenceNewClusters() }
        location = try writableL2Location(guestCluster: first)
        for index in 0..<Int(count) {
            setL2Entry((location.slot, location.index + index), (host + UInt64(index) * clusterSize) | Qcow2Geometry.copiedFlag)
        }
        if reused == nil {
            for state in old { try release(state, reason: .other) }
        }
        processDiscards()
        return dataEnd - position
    }

    /// Writes a run's data to its new host clusters with the copy-on-write head and tail, as
    /// QEMU does: where the head and tail read as zeroes, the whole allocation is zeroed in
    /// one fast request first (a hole where the file can), then the data written; otherwise
    /// one write of the copied head, the data and the copied tail.
    private mutating func writeAllocatedData(
        at host: UInt64, old: [Qcow2ClusterState], firstGuestCluster first: UInt64, runStart: UInt64, dataEnd: UInt64,
        payload: UnsafeRawBufferPointer, headLength: UInt64, tailLength: UInt64, fileEnd: UInt64
    ) throws(BlockError) {
        let clusterSize = geometry.clusterSize
        let count = UInt64(old.count)
        if headLength + tailLength == 0 {
            try file.write(at: host, from: payload)
        } else {
            // QEMU's zero test of the copy-on-write regions is a block-status query.
            _ = isMetadataPreallocated()
            var cowIsZero = try cowReadsAsZeroes(old[0], at: runStart, length: headLength)
            if cowIsZero { cowIsZero = try cowReadsAsZeroes(old[old.count - 1], at: dataEnd, length: tailLength) }
            // Zeroes: the whole allocation is zeroed in one request (a hole where the file
            // can), then the data written, as QEMU does. Otherwise (or when the file cannot
            // zero quickly) one write of the copied head, the data and the copied tail.
            let zeroed = cowIsZero ? try zeroAllocation(at: host, length: count * clusterSize) : false
            if !zeroed {
                var merged = [UInt8](repeating: 0, count: Int(headLength))
                if !cowIsZero && headLength > 0 { merged = try readOld(old[0], guestCluster: first, from: 0, count: headLength) }
                merged.append(contentsOf: payload)
                if !cowIsZero && tailLength > 0 {
                    merged += try readOld(old[old.count - 1], guestCluster: first + count - 1, from: clusterSize - tailLength, count: tailLength)
                } else {
                    merged += repeatElement(0, count: Int(tailLength))
                }
                try source.writeHost(at: host, merged)
                l2NeedsDataFlushFirst()
            } else {
                try file.write(at: host + headLength, from: payload)
                // Zeroed space inside the old file must be durable before L2 points to it.
                if host < fileEnd { l2NeedsDataFlushFirst() }
            }
        }
    }

    /// Zeroes freshly allocated host clusters with one fast write-zeroes request; false
    /// when the file cannot do that quickly.
    private func zeroAllocation(at host: UInt64, length: UInt64) throws(BlockError) -> Bool {
        source.fileDataExtent.forget()
        do {
            try file.writeZeroes(at: host, length: length, flags: .fastZero)
            return true
        } catch .notSupported {
            return false
        }
    }

    /// Whether a copy-on-write region is known to read as zeroes from metadata alone,
    /// without reading data (QEMU's quick test before zeroing instead of copying).
    private func cowReadsAsZeroes(_ state: Qcow2ClusterState, at guestOffset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        guard length > 0 else { return true }
        switch state {
        case .zeroPlain, .zeroAllocated: return true
        case .normal, .compressed: return false
        case .unallocated: return try source.backingIsKnownZero(at: guestOffset, length: length)
        }
    }

    private func readOld(_ state: Qcow2ClusterState, guestCluster: UInt64, from start: UInt64, count: UInt64) throws(BlockError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(count))
        try bytes.withMutableBytes { (buffer: UnsafeMutableRawBufferPointer) throws(BlockError) in
            try source.readCluster(state, guestCluster: guestCluster, from: start, into: buffer)
        }
        return bytes
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
