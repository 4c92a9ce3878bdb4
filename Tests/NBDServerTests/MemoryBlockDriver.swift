import NBDServer
import BlockCore
import Glibc
import Synchronization

/// An in-memory driver for the tests: contents, per-cluster allocation (64 KiB clusters,
/// unallocated reads as zeroes), a record of the calls and injectable failures.
final class MemoryBlockDriver: BlockDriver {
    enum Call: Equatable {
        case write(offset: UInt64, length: Int, flags: WriteFlags)
        case writeZeroes(offset: UInt64, length: UInt64, flags: WriteFlags)
        case discard(offset: UInt64, length: UInt64)
        case flush
    }

    struct State {
        var bytes: [UInt8]
        var allocated: [Bool]
        var calls: [Call] = []
        var failure: BlockError?
        var delayMicroseconds: UInt32 = 0
        /// `currentSize()` calls: how often the size is polled.
        var sizeQueries = 0
    }

    static let clusterSize: UInt64 = 65536
    let state: Mutex<State>
    let driverName = "memory"
    let capabilities: BlockDriverCapabilities
    let children: [(role: String, node: BlockNode)] = []
    let exactFilename: String? = "memory://"
    let optionsDescription = BlockOptionObject([.init("driver", .string("memory"))])
    func allocatedSize() -> UInt64? { nil }

    init(size: Int, alignment: UInt32 = 1) {
        let clusters = (size + Int(Self.clusterSize) - 1) / Int(Self.clusterSize)
        state = Mutex(State(bytes: [UInt8](repeating: 0, count: size), allocated: [Bool](repeating: false, count: clusters)))
        capabilities = BlockDriverCapabilities(requestAlignment: alignment, growable: false, resizable: false)
    }

    var calls: [Call] { state.withLock { $0.calls } }
    func contents(_ range: Range<Int>) -> [UInt8] { state.withLock { Array($0.bytes[range]) } }
    func fail(with error: BlockError?) { state.withLock { $0.failure = error } }
    /// Makes every read and write take at least this long (a slow device).
    func delay(microseconds: UInt32) { state.withLock { $0.delayMicroseconds = microseconds } }

    func currentSize() throws(BlockError) -> UInt64 {
        state.withLock { state in
            state.sizeQueries += 1
            return UInt64(state.bytes.count)
        }
    }

    var sizeQueries: Int { state.withLock { $0.sizeQueries } }

    /// Grows the storage behind the node's back, as a volume manager does.
    func grow(to size: Int) {
        state.withLock { state in
            state.bytes += [UInt8](repeating: 0, count: size - state.bytes.count)
            let clusters = (size + Int(Self.clusterSize) - 1) / Int(Self.clusterSize)
            state.allocated += [Bool](repeating: false, count: clusters - state.allocated.count)
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        try state.withLock { state throws(BlockError) in
            if let failure = state.failure { throw failure }
            usleep(state.delayMicroseconds)
            state.bytes.withUnsafeBytes { bytes in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset) + buffer.count]))
            }
        }
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        try state.withLock { state throws(BlockError) in
            state.calls.append(.write(offset: offset, length: buffer.count, flags: flags))
            if let failure = state.failure { throw failure }
            usleep(state.delayMicroseconds)
            state.bytes.replaceSubrange(Int(offset)..<Int(offset) + buffer.count, with: buffer)
            Self.mark(&state, offset: offset, length: UInt64(buffer.count), allocated: true)
        }
    }

    func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        try state.withLock { state throws(BlockError) in
            state.calls.append(.writeZeroes(offset: offset, length: length, flags: flags))
            if let failure = state.failure { throw failure }
            state.bytes.replaceSubrange(Int(offset)..<Int(offset + length), with: repeatElement(0, count: Int(length)))
        }
    }

    func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        state.withLock { $0.calls.append(.discard(offset: offset, length: length)) }
    }

    func flush() throws(BlockError) {
        try state.withLock { state throws(BlockError) in
            state.calls.append(.flush)
            if let failure = state.failure { throw failure }
        }
    }

    /// One extent per run of equally allocated clusters, starting at `offset`.
    func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        try state.withLock { state throws(BlockError) in
            if let failure = state.failure { throw failure }
            let end = offset + length
            var extents: [BlockExtent] = []
            var position = offset
            while position < end {
                let cluster = Int(position / Self.clusterSize)
                let allocated = state.allocated[cluster]
                let extentEnd = min(end, UInt64(cluster + 1) * Self.clusterSize)
                if let last = extents.last, last.isHole == !allocated {
                    extents[extents.count - 1].length += extentEnd - position
                } else {
                    extents.append(BlockExtent(length: extentEnd - position, isHole: !allocated, isZero: !allocated))
                }
                position = extentEnd
            }
            return extents
        }
    }

    func truncate(to size: UInt64) throws(BlockError) { throw .notSupported("resize") }
    func close() {}

    private static func mark(_ state: inout State, offset: UInt64, length: UInt64, allocated: Bool) {
        guard length > 0 else { return }
        for cluster in Int(offset / clusterSize)...Int((offset + length - 1) / clusterSize) {
            state.allocated[cluster] = allocated
        }
    }
}

struct IgnoredBlockEvents: BlockEventSink {
    func blockEvent(_ event: BlockEvent) {}
}

/// Takes its time over every event, as a manager woken on the I/O thread's core does.
struct SlowBlockEvents: BlockEventSink {
    let microseconds: UInt32
    func blockEvent(_ event: BlockEvent) { usleep(microseconds) }
}

func makeExport(id: String = "e0", name: String = "disk", description: String? = nil, size: Int = 1 << 20,
                writable: Bool = true, nodeReadOnly: Bool = false, alignment: UInt32 = 1,
                eventSink: any BlockEventSink = IgnoredBlockEvents()) throws -> (NBDExport, MemoryBlockDriver) {
    let driver = MemoryBlockDriver(size: size, alignment: alignment)
    let node = try BlockNode(options: BlockNodeOptions(nodeName: "node-\(id)", readOnly: nodeReadOnly, discard: .unmap),
                             driver: driver, eventSink: eventSink)
    return (NBDExport(id: id, name: name, description: description, node: node, writable: writable), driver)
}


