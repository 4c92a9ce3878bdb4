import BlockCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Times one request for `NBDServiceTimeEstimate`, and lets the manager run after a request
/// that fired a block event.
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

    /// Call once the request's I/O is done (no lock held): nanoseconds since the timer
    /// started, or nil when an event fired meanwhile.
    ///
    /// In that case the thread first yields its core. Writing the event to a local socket
    /// woke the manager on this core (the kernel expects a writer to sleep next), but this
    /// thread would go on with replies and further requests, and the manager would wait for
    /// them — or, on a virtual machine, for the host to run another, idle, virtual CPU: a
    /// millisecond in the worst cases measured. Events are rare; the yield costs the
    /// connection a few microseconds.
    func finish() -> UInt64? {
        if let events, events.count != eventsBefore {
            sched_yield()
            return nil
        }
        let elapsed = (NIODeadline.now() - start).nanoseconds
        return elapsed > 0 ? UInt64(elapsed) : 0
    }
}
