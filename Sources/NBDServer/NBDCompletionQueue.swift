import NIOCore
import Synchronization

/// Replies finished on I/O threads, waiting for the event loop. Only the completion that
/// finds the queue empty schedules a drain, so a burst of completions costs one hop to the
/// event loop and one flush.
final class NBDCompletionQueue: Sendable {
    private let replies = Mutex<[ByteBuffer]>([])

    /// Queues a reply; true when the caller must schedule a drain.
    func append(_ reply: ByteBuffer) -> Bool {
        replies.withLock { replies in
            replies.append(reply)
            return replies.count == 1
        }
    }

    /// Swaps the queued replies into `spare` (which must be empty), so that neither array is
    /// reallocated in the steady state.
    func takeAll(into spare: inout [ByteBuffer]) {
        replies.withLock { replies in swap(&replies, &spare) }
    }
}
