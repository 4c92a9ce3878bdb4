import NIOCore
import Synchronization

/// A request finished on an I/O thread: its reply, and how long the I/O took when the
/// request is a sample for `NBDInlineIOPolicy`.
struct NBDCompletion {
    var reply: ByteBuffer
    /// The data the request read or wrote (for the connection's in-flight budget).
    var bytes: Int = 0
    var serviceTime: UInt64?
}

/// Requests finished on I/O threads, waiting for the event loop. Only the completion that
/// finds the queue empty schedules a drain, so a burst of completions costs one hop to the
/// event loop and one flush.
final class NBDCompletionQueue: Sendable {
    private let replies = Mutex<[NBDCompletion]>([])

    /// Queues a completion; true when the caller must schedule a drain.
    func append(_ completion: NBDCompletion) -> Bool {
        replies.withLock { replies in
            replies.append(completion)
            return replies.count == 1
        }
    }

    /// Swaps the queued replies into `spare` (which must be empty), so that neither array is
    /// reallocated in the steady state.
    func takeAll(into spare: inout [NBDCompletion]) {
        replies.withLock { replies in swap(&replies, &spare) }
    }
}
