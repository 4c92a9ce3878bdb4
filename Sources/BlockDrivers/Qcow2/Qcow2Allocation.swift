import BlockCore
import Dispatch

/// A run of guest clusters that got new host clusters (or its own preallocated one) for a
/// write, between `Qcow2Metadata.beginAllocation` and `finishAllocation`: the data goes to
/// the host clusters outside the metadata lock, then the L2 entries point to them.
///
/// Crash safety as with the lock held throughout: the refcounts are raised first (in the
/// cache, written before any L2 table that references them), the data (and the zeroed or
/// copied rest of the clusters) is written next, and only then do L2 entries change.
struct Qcow2Allocation {
    /// Byte offset of the first host cluster; the run is contiguous in the file.
    let host: UInt64
    /// A preallocated zero cluster of the image's own, reused instead of a new cluster.
    let isReused: Bool
    /// What the L2 entries of the run said before (the copy-on-write source).
    let old: [Qcow2ClusterState]
    let firstGuestCluster: UInt64
    /// Guest offset where the write's data starts, and where its part in this run ends.
    let position: UInt64
    let dataEnd: UInt64
    /// Bytes of the first cluster before the data, and of the last cluster after it.
    let headLength: UInt64
    let tailLength: UInt64
    /// The file's length when the clusters were allocated: clusters past it hold no stale data.
    let fileEnd: UInt64
    /// `Qcow2InFlightIO` epoch the data write counts in.
    let epoch: Int

    /// Bytes of the write this run takes.
    var length: UInt64 { dataEnd - position }
}

/// An allocation in flight, as the metadata remembers it: which guest clusters other
/// writers, write-zeroes and discards must leave alone until it is finished. The clusters
/// of allocations in flight never overlap (a write over them waits first), so the first
/// one names the allocation.
struct Qcow2PendingAllocation {
    let clusters: Range<UInt64>
    /// Host clusters it allocated (none when it reuses a preallocated one).
    let hostClusters: Range<UInt64>
    /// Made by the first request that has to wait (most allocations have none).
    var gate: Qcow2AllocationGate?
}

/// Where requests that overlap an allocation in flight wait for it to finish: closed until
/// `open`, open for good after.
final class Qcow2AllocationGate: @unchecked Sendable {
    // DispatchSemaphore is thread-safe; it only lacks the Sendable annotation.
    private let semaphore = DispatchSemaphore(value: 0)

    /// Blocks until `open` (at once if it was), then passes the one signal on to the next
    /// waiter, however many there are.
    func wait() {
        semaphore.wait()
        semaphore.signal()
    }

    func open() { semaphore.signal() }
}

extension Qcow2DataSource {
    /// Writes an allocation's data with the copy-on-write head and tail, as QEMU does: where
    /// the head and tail read as zeroes, the whole run is zeroed in one fast request first
    /// (allocated zeroes, or a hole, where the file can), then the data written; otherwise
    /// one write of the copied head, the data and the copied tail. Returns whether the file
    /// must be flushed before an L2 entry points to the run (copied data, or zeroes over
    /// space the file had before, which may hold stale data).
    func writeAllocation(_ allocation: Qcow2Allocation, payload: UnsafeRawBufferPointer) throws(BlockError) -> Bool {
        let clusterSize = geometry.clusterSize
        let old = allocation.old
        let count = UInt64(old.count)
        let (head, tail) = (allocation.headLength, allocation.tailLength)
        if head + tail == 0 {
            try file.write(at: allocation.host, from: payload)
            return false
        }
        var cowIsZero = try cowReadsAsZeroes(old[0], at: allocation.firstGuestCluster * clusterSize, length: head)
        if cowIsZero { cowIsZero = try cowReadsAsZeroes(old[old.count - 1], at: allocation.dataEnd, length: tail) }
        if cowIsZero, try zeroFast(at: allocation.host, length: count * clusterSize) {
            try file.write(at: allocation.host + head, from: payload)
            return allocation.host < allocation.fileEnd
        }
        var merged = [UInt8](repeating: 0, count: Int(head))
        if !cowIsZero && head > 0 {
            merged = try readOld(old[0], guestCluster: allocation.firstGuestCluster, from: 0, count: head)
        }
        merged.append(contentsOf: payload)
        if !cowIsZero && tail > 0 {
            merged += try readOld(old[old.count - 1], guestCluster: allocation.firstGuestCluster + count - 1, from: clusterSize - tail, count: tail)
        } else {
            merged += repeatElement(0, count: Int(tail))
        }
        try writeHost(at: allocation.host, merged)
        return true
    }

    /// Zeroes freshly allocated host clusters with one fast write-zeroes request; false
    /// when the file cannot do that quickly.
    private func zeroFast(at host: UInt64, length: UInt64) throws(BlockError) -> Bool {
        fileDataExtent.forget()
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
        case .unallocated: return try backingIsKnownZero(at: guestOffset, length: length)
        }
    }

    private func readOld(_ state: Qcow2ClusterState, guestCluster: UInt64, from start: UInt64, count: UInt64) throws(BlockError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(count))
        try bytes.withMutableBytes { (buffer: UnsafeMutableRawBufferPointer) throws(BlockError) in
            try readCluster(state, guestCluster: guestCluster, from: start, into: buffer)
        }
        return bytes
    }
}
