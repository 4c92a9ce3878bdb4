import BlockCore
import NIOCore
import Synchronization

/// A write that found no space, as its connection hands it over to be held.
struct NBDHeldWrite: Sendable {
    /// The connection it came from: its writes are dropped when it closes.
    let owner: ObjectIdentifier
    /// The volumes' sizes taken before its last attempt: growth after that may have made room.
    var volumeSizes: [UInt64]
    /// Runs the write again and answers it; false when it found no space again (it is then
    /// held again, unanswered).
    let retry: @Sendable () -> Bool
    /// Answers it with ENOSPC (held for too long).
    let fail: @Sendable () -> Void
    /// Tells the server's observer that the export stalled.
    let reportStall: @Sendable () -> Void
}

/// The writes of one export (`on-enospc=hold`) that wait for its volume to grow, as
/// dm-thin queues I/O while its pool is full.
///
/// The volumes are the writable protocol nodes under the export (a qcow2's file, a file
/// volume, a device): where space runs out. While anything is held their sizes are re-read
/// every `checkInterval`, and whenever `check()` is called (a QMP command may have grown
/// them); writes whose volume grew since their last attempt run again, in the order they
/// were first held, one batch at a time on the executor. A write held for `timeout` fails
/// with ENOSPC. Nothing polls while nothing is held.
///
/// A stall is reported once: when a write is held and none was reported since the volumes
/// last grew (or since nothing was held). A manager that grows the volume on each report
/// therefore hears again when the growth was not enough.
final class NBDStalledWrites: Sendable {
    static let checkInterval = TimeAmount.milliseconds(2)

    private struct Waiter {
        let sequence: UInt64
        let deadline: NIODeadline?
        var write: NBDHeldWrite
    }

    private struct State {
        /// In the order the writes were first held.
        var waiters: [Waiter] = []
        var nextSequence: UInt64 = 0
        /// A batch of retries is running (one at a time, to keep the order).
        var isRetrying = false
        /// The current stall has been reported.
        var isReported = false
        var ticker: RepeatedTask?
        /// Where the ticker runs, and whose clock the deadlines follow.
        var eventLoop: (any EventLoop)?
        var executor: (any BlockIOExecutor)?

        /// True when the stall has to be reported now.
        mutating func noteStall() -> Bool {
            defer { isReported = true }
            return !isReported
        }

        mutating func takeTicker() -> RepeatedTask? {
            defer { ticker = nil }
            return ticker
        }
    }

    let volumes: [BlockNode]
    let timeout: TimeAmount?
    private let state = Mutex(State())

    /// Holds writes to `node`; `timeout` nil holds them for as long as it takes.
    init(exporting node: BlockNode, timeout: TimeAmount?) {
        self.volumes = Self.volumes(under: node)
        self.timeout = timeout
    }

    /// The writable protocol nodes under `node`, itself included.
    static func volumes(under node: BlockNode) -> [BlockNode] {
        var found: [BlockNode] = []
        func visit(_ node: BlockNode) {
            if node.driver.isProtocol, !node.isReadOnly, !found.contains(where: { $0 === node }) { found.append(node) }
            for child in node.driver.children { visit(child.node) }
        }
        visit(node)
        return found
    }

    /// The volumes' sizes as last seen (no system call): taken before an attempt, so that
    /// growth after it is never missed.
    var volumeSizes: [UInt64] { volumes.map(\.size) }

    /// Writes held right now (a batch being retried not counted).
    var heldCount: Int { state.withLock { $0.waiters.count } }

    /// Whether a held write waits for growth that has not come: it found no space at the
    /// volumes' current sizes. Writes whose volume grew since their last attempt are about to
    /// run again, and a batch running again that still finds no space is a new stall (it is
    /// reported). Reads the sizes only while something is held.
    var isStalled: Bool {
        guard heldCount > 0 else { return false }
        let sizes = volumes.map { (try? $0.refreshSize()) ?? $0.size }
        return state.withLock { state in
            state.waiters.contains { waiter in !zip(sizes, waiter.write.volumeSizes).contains { $0 > $1 } }
        }
    }

    /// Holds a write; the ticker starts on `eventLoop` if it is not running, retries go to
    /// `executor`.
    func hold(_ write: NBDHeldWrite, eventLoop: any EventLoop, executor: any BlockIOExecutor) {
        let report = state.withLock { state in
            if state.ticker == nil { state.eventLoop = eventLoop }
            state.executor = executor
            state.waiters.append(Waiter(sequence: state.nextSequence, deadline: timeout.map { eventLoop.now + $0 }, write: write))
            state.nextSequence += 1
            startTicking(&state)
            return state.noteStall()
        }
        if report { write.reportStall() }
    }

    /// Drops the writes of a connection that closed (they are never answered).
    func cancel(owner: ObjectIdentifier) {
        let ticker = state.withLock { state -> RepeatedTask? in
            state.waiters.removeAll { $0.write.owner == owner }
            return stopIfEmpty(&state)
        }
        ticker?.cancel()
    }

    /// Re-reads the volumes' sizes: writes whose volume grew run again, those held for too
    /// long fail. Cheap when nothing is held.
    func check() {
        guard let eventLoop = state.withLock({ $0.waiters.isEmpty || $0.isRetrying ? nil : $0.eventLoop }) else { return }
        let sizes = volumes.map { (try? $0.refreshSize()) ?? $0.size }
        let now = eventLoop.now
        let (expired, grown, executor, ticker) = state.withLock { state -> ([NBDHeldWrite], [Waiter], (any BlockIOExecutor)?, RepeatedTask?) in
            guard !state.isRetrying else { return ([], [], nil, nil) }
            var expired: [NBDHeldWrite] = []
            var grown: [Waiter] = []
            state.waiters.removeAll { waiter in
                if zip(sizes, waiter.write.volumeSizes).contains(where: { $0 > $1 }) {
                    grown.append(waiter)
                    return true
                }
                if let deadline = waiter.deadline, deadline <= now {
                    expired.append(waiter.write)
                    return true
                }
                return false
            }
            if !grown.isEmpty {
                state.isRetrying = true
                // What still finds no space after this growth is a new stall.
                state.isReported = false
            }
            return (expired, grown, state.executor, stopIfEmpty(&state))
        }
        ticker?.cancel()
        for write in expired { write.fail() }
        if !grown.isEmpty, let executor {
            executor.execute { self.retry(grown) }
        }
    }

    /// Runs a batch of grown writes again, in order; those that still find no space are
    /// held again in their place.
    private func retry(_ batch: [Waiter]) {
        var stillHeld: [Waiter] = []
        for var waiter in batch {
            waiter.write.volumeSizes = volumeSizes
            if !waiter.write.retry() { stillHeld.append(waiter) }
        }
        let (report, ticker) = state.withLock { state -> (Bool, RepeatedTask?) in
            state.isRetrying = false
            if !stillHeld.isEmpty {
                state.waiters = (state.waiters + stillHeld).sorted { $0.sequence < $1.sequence }
                startTicking(&state)
                return (state.noteStall(), nil)
            }
            return (false, stopIfEmpty(&state))
        }
        ticker?.cancel()
        if report, let first = stillHeld.first { first.write.reportStall() }
        // The volumes may have grown again while the batch ran.
        check()
    }

    private func startTicking(_ state: inout State) {
        guard state.ticker == nil, !state.waiters.isEmpty, let eventLoop = state.eventLoop else { return }
        state.ticker = eventLoop.scheduleRepeatedTask(initialDelay: Self.checkInterval, delay: Self.checkInterval) { _ in
            self.check()
        }
    }

    /// When nothing is held any more, the ticker stops (it is returned, to be cancelled
    /// outside the lock); unless a batch is still running, the stall is over.
    private func stopIfEmpty(_ state: inout State) -> RepeatedTask? {
        guard state.waiters.isEmpty else { return nil }
        if !state.isRetrying { state.isReported = false }
        return state.takeTicker()
    }
}
