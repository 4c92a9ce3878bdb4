import BlockCore
import Synchronization

/// A driver over a byte array for tests: enforces its alignment (a misaligned request is a
/// test failure, reported as `.invalidArgument`), records what reached it, can be told to fail.
final class MemoryDriver: BlockDriver {
    struct State {
        var bytes: [UInt8]
        var requests: [String] = []
        var closed = false
        var failWrites = false
    }

    let state: Mutex<State>
    let alignment: UInt32
    let growable: Bool
    let resizable: Bool
    let childNodes: [(role: String, node: BlockNode)]

    init(size: Int, alignment: UInt32 = 1, growable: Bool = false, resizable: Bool = true,
         children: [(role: String, node: BlockNode)] = []) {
        state = Mutex(State(bytes: [UInt8](repeating: 0, count: size)))
        self.alignment = alignment
        self.growable = growable
        self.resizable = resizable
        self.childNodes = children
    }

    var bytes: [UInt8] { state.withLock { $0.bytes } }
    var requests: [String] { state.withLock { $0.requests } }
    var isClosed: Bool { state.withLock { $0.closed } }
    func failWrites(_ fail: Bool) { state.withLock { $0.failWrites = fail } }

    var driverName: String { "memory" }
    var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: alignment, growable: growable, resizable: resizable)
    }
    var children: [(role: String, node: BlockNode)] { childNodes }

    func currentSize() throws(BlockError) -> UInt64 { UInt64(state.withLock { $0.bytes.count }) }

    private func record(_ name: String, _ offset: UInt64, _ length: UInt64) throws(BlockError) {
        try state.withLock { (state: inout State) throws(BlockError) in
            state.requests.append("\(name) \(offset) \(length)")
            if offset % UInt64(alignment) != 0 || length % UInt64(alignment) != 0 {
                throw .invalidArgument("misaligned \(name) \(offset) \(length)")
            }
        }
    }

    private func store(_ offset: UInt64, _ data: [UInt8]) throws(BlockError) {
        try state.withLock { (state: inout State) throws(BlockError) in
            if state.failWrites { throw .system(errno: 5, operation: "write") }
            let end = Int(offset) + data.count
            if end > state.bytes.count { state.bytes += [UInt8](repeating: 0, count: end - state.bytes.count) }
            state.bytes.replaceSubrange(Int(offset)..<end, with: data)
        }
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        try record("read", offset, UInt64(buffer.count))
        state.withLock { state in
            for i in 0..<buffer.count {
                let position = Int(offset) + i
                buffer[i] = position < state.bytes.count ? state.bytes[position] : 0
            }
        }
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        try record("write", offset, UInt64(buffer.count))
        try store(offset, Array(buffer))
    }

    func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        try record(flags.contains(.mayUnmap) ? "zero-unmap" : "zero", offset, length)
        try store(offset, [UInt8](repeating: 0, count: Int(length)))
    }

    func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try record("discard", offset, length)
    }

    func flush() throws(BlockError) {
        try record("flush", 0, 0)
    }

    func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        [BlockExtent(length: length, isHole: false, isZero: false)]
    }

    func truncate(to size: UInt64) throws(BlockError) {
        state.withLock { state in
            state.bytes = Array(state.bytes.prefix(Int(size))) + [UInt8](repeating: 0, count: max(0, Int(size) - state.bytes.count))
        }
    }

    func close() { state.withLock { $0.closed = true } }

    var exactFilename: String? { "memory://" }
    var optionsDescription: BlockOptionObject { BlockOptionObject([.init("driver", .string("memory"))]) }
    func allocatedSize() -> UInt64? { nil }
}

/// Collects block events.
final class EventRecorder: BlockEventSink {
    private let events = Mutex<[BlockEvent]>([])
    var recorded: [BlockEvent] { events.withLock { $0 } }
    func blockEvent(_ event: BlockEvent) { events.withLock { $0.append(event) } }
}

func makeNode(
    _ name: String = "n0", size: Int = 1 << 20, alignment: UInt32 = 1, growable: Bool = false,
    readOnly: Bool = false, discard: BlockNodeOptions.DiscardMode = .ignore, isExplicit: Bool = true,
    resizable: Bool = true, children: [(role: String, node: BlockNode)] = [], sink: EventRecorder = EventRecorder()
) throws -> (BlockNode, MemoryDriver, EventRecorder) {
    let driver = MemoryDriver(size: size, alignment: alignment, growable: growable, resizable: resizable, children: children)
    let node = try BlockNode(
        options: BlockNodeOptions(nodeName: name, readOnly: readOnly, discard: discard, isExplicit: isExplicit),
        driver: driver, eventSink: sink)
    return (node, driver, sink)
}

extension BlockNode {
    func write(at offset: UInt64, _ bytes: [UInt8], flags: WriteFlags = []) throws {
        try bytes.withUnsafeBytes { try write(at: offset, from: $0, flags: flags) }
    }

    func read(at offset: UInt64, count: Int, filler: UInt8 = 0xEE) throws -> [UInt8] {
        var bytes = [UInt8](repeating: filler, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }
}
