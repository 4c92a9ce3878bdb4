import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-node I/O counters with the fields `query-blockstats` reports. Lock-free: each counter
/// is its own relaxed atomic, so the hot path costs a few uncontended increments.
public final class BlockStatistics: Sendable {
    public enum Operation: Sendable { case read, write, flush, unmap }

    private struct Counters: ~Copyable {
        let bytes = Atomic<UInt64>(0)
        let operations = Atomic<UInt64>(0)
        let totalTimeNs = Atomic<UInt64>(0)
        let failed = Atomic<UInt64>(0)
        let invalid = Atomic<UInt64>(0)
    }

    private let read = Counters()
    private let write = Counters()
    private let flush = Counters()
    private let unmap = Counters()
    private let highestWriteEnd = Atomic<UInt64>(0)

    public init() {}

    /// A monotonic timestamp for `finish(_:bytes:since:)`.
    @inline(__always)
    public func start() -> UInt64 { Self.monotonicNanoseconds() }

    public func finish(_ operation: Operation, bytes: UInt64, since start: UInt64) {
        let now = Self.monotonicNanoseconds()
        withCounters(operation) { c in
            c.bytes.add(bytes, ordering: .relaxed)
            c.operations.add(1, ordering: .relaxed)
            c.totalTimeNs.add(now &- start, ordering: .relaxed)
        }
    }

    /// Counts a failed request: range and permission errors are "invalid", the rest "failed".
    public func fail(_ operation: Operation, error: BlockError) {
        withCounters(operation) { c in
            switch error {
            case .outOfRange, .readOnly, .invalidArgument: c.invalid.add(1, ordering: .relaxed)
            default: c.failed.add(1, ordering: .relaxed)
            }
        }
    }

    /// Records the end offset of a completed or failed write-type request (`wr_highest_offset`).
    @inline(__always)
    public func noteWriteEnd(_ end: UInt64) {
        var current = highestWriteEnd.load(ordering: .relaxed)
        while end > current {
            let (exchanged, original) = highestWriteEnd.compareExchange(expected: current, desired: end, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    public var writeHighestOffset: UInt64 { highestWriteEnd.load(ordering: .relaxed) }

    /// A consistent-enough copy of every counter, for reporting.
    public func snapshot() -> BlockStatisticsSnapshot {
        func op(_ c: borrowing Counters) -> BlockStatisticsSnapshot.Operation {
            .init(bytes: c.bytes.load(ordering: .relaxed), operations: c.operations.load(ordering: .relaxed),
                  totalTimeNs: c.totalTimeNs.load(ordering: .relaxed), failed: c.failed.load(ordering: .relaxed),
                  invalid: c.invalid.load(ordering: .relaxed))
        }
        return BlockStatisticsSnapshot(
            read: op(read), write: op(write), flush: op(flush), unmap: op(unmap),
            writeHighestOffset: writeHighestOffset)
    }

    private func withCounters(_ operation: Operation, _ body: (borrowing Counters) -> Void) {
        switch operation {
        case .read: body(read)
        case .write: body(write)
        case .flush: body(flush)
        case .unmap: body(unmap)
        }
    }

    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// Counters of one node at one moment.
public struct BlockStatisticsSnapshot: Sendable, Equatable {
    public struct Operation: Sendable, Equatable {
        public var bytes, operations, totalTimeNs, failed, invalid: UInt64
    }
    public var read, write, flush, unmap: Operation
    public var writeHighestOffset: UInt64
}
