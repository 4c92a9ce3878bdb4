import BlockCore
import NIOCore

/// Times one request for `NBDServiceTimeEstimate`.
///
/// A request during which the block layer fired an event is no sample: its time includes
/// delivering the event (a manager woken on this core often runs before the request
/// finishes), which says nothing of the device. Every request crossing a threshold would
/// otherwise count as slow, and move the next ones — the next crossing among them — to the
/// I/O threads, one thread wake-up further from the manager.
struct NBDServiceTimer {
    private let start = NIODeadline.now()
    private let events: BlockEventCounter?
    private let eventsBefore: UInt64

    init(events: BlockEventCounter?) {
        self.events = events
        eventsBefore = events?.count ?? 0
    }

    /// Nanoseconds since the timer started; nil when an event fired meanwhile.
    func sample() -> UInt64? {
        if let events, events.count != eventsBefore { return nil }
        let elapsed = (NIODeadline.now() - start).nanoseconds
        return elapsed > 0 ? UInt64(elapsed) : 0
    }
}
