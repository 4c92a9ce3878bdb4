import Synchronization

/// Counts the block layer's events on their way to another sink.
///
/// Whoever times requests reads `count` before and after one: when it moved, the request
/// (or one running beside it) fired an event, and its time includes delivering it — a
/// socket write that wakes the manager, who often runs at once on this very core. Such a
/// time says nothing about how fast the device is.
public final class BlockEventCounter: BlockEventSink {
    private let sink: any BlockEventSink
    private let fired = Atomic<UInt64>(0)

    /// Counts every event and then passes it to `sink`.
    public init(forwardingTo sink: any BlockEventSink) {
        self.sink = sink
    }

    /// Events fired so far (delivery may still be under way).
    @inline(__always)
    public var count: UInt64 { fired.load(ordering: .relaxed) }

    public func blockEvent(_ event: BlockEvent) {
        fired.add(1, ordering: .relaxed)
        sink.blockEvent(event)
    }
}
