/// The controller's decisions for one volume, as a pure state machine: the runtime feeds it
/// what happened (connected, threshold armed, event, extension finished, retry due) with the
/// current time, and carries out the actions it returns. Time is a parameter, so tests drive
/// it with a manual clock.
///
/// Invariants:
/// - at most one extension runs per volume; events meanwhile are coalesced into it (after it
///   the threshold is re-armed and the highest written offset compared again, so nothing is
///   lost);
/// - the threshold is armed *before* the highest offset is read: a write crossing it after
///   arming fires the event, one before arming is seen in the offset ("already passed");
/// - an event for a threshold other than the one armed last is stale and ignored;
/// - writes found held for lack of space on connecting are a no-space event: the event that
///   reported them may have gone out while nobody listened, and the highest written offset
///   does not show a write that failed. Likewise after an extension into which a no-space
///   event was merged: that event may be the daemon's word that the growth was not enough,
///   so the arming after it also asks whether writes are still held;
/// - at the maximum size nothing is armed and nothing extended: no busy loop;
/// - a failed extension is retried after `RetryBackoff`, consecutive failures doubling it.
public struct VolumeStateMachine<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration, Instant: Sendable {
    /// One extension in flight.
    public struct Extension: Sendable, Equatable {
        public var from: UInt64
        public var to: UInt64
        /// 1 for the first try, counting consecutive failures.
        public var attempt: Int
        public var started: Instant
    }

    public enum Phase: Sendable, Equatable {
        /// Not connected to the daemon (or not yet): nothing armed that we know of.
        case disconnected
        /// `block-set-write-threshold` sent; waiting for the highest offset read after it.
        case arming(threshold: UInt64)
        case armed(threshold: UInt64)
        case extending(Extension)
        case waitingToRetry(until: Instant)
        /// The volume has its maximum size: nothing armed, nothing to do.
        case atMaximum
    }

    /// What the runtime must do, or report.
    public enum Action: Sendable, Equatable {
        /// Set the write threshold on the node, then read its `wr_highest_offset` (and with
        /// `checkingHeldWrites`, whether an export on it holds writes) and call
        /// `armed(threshold:highestOffset:writesHeld:now:)`.
        case arm(threshold: UInt64, checkingHeldWrites: Bool = false)
        /// Grow the volume to `to` bytes, then read the size the daemon sees and call
        /// `extendSucceeded(capacity:now:)` or `extendFailed(now:)`.
        case extend(from: UInt64, to: UInt64, attempt: Int)
        /// Call `retryDue(now:)` at `at` (`after` from now): the extension failed `failures`
        /// times in a row.
        case retry(at: Instant, after: Duration, failures: Int)
        /// Something to log and count.
        case report(Report)
    }

    public enum Report: Sendable, Equatable {
        /// The highest offset was past the threshold when it was armed: an event of its own.
        case alreadyPastThreshold(highestOffset: UInt64, threshold: UInt64)
        /// An event while an extension is in flight or waiting to be retried.
        case coalesced
        /// An event for a threshold that is no longer armed.
        case stale(writeThreshold: UInt64)
        /// The volume reached (or has) its maximum size; it is no longer extended.
        case reachedMaximum(capacity: UInt64)
        /// A write failed for lack of space though the volume is at its maximum.
        case noSpaceAtMaximum(capacity: UInt64)
        /// The daemon holds writes to the volume for lack of space: found on connecting, or
        /// when arming after an extension that merged a no-space event.
        case writesHeld
        case extended(from: UInt64, to: UInt64, latency: Duration)
    }

    public let policy: ExtendPolicy
    public let backoff: RetryBackoff
    public private(set) var phase: Phase = .disconnected
    /// The size last seen by the daemon (nil before the first connection).
    public private(set) var capacity: UInt64?
    public private(set) var isConnected = false
    private var failures = 0
    /// A no-space event was merged into the extension in flight (or its retries).
    private var noSpaceDuringExtension = false

    public init(policy: ExtendPolicy, backoff: RetryBackoff) {
        self.policy = policy
        self.backoff = backoff
    }

    // MARK: Connection

    /// The daemon was (re)connected and reports the volume's size, and whether it holds
    /// writes to the volume for lack of space (an export's `__io.highwater_io-status` is
    /// `nospace`): those are extended for at once, whatever the threshold would say.
    public mutating func connected(capacity: UInt64, writesHeld: Bool = false, now: Instant) -> [Action] {
        isConnected = true
        switch phase {
        case .extending, .waitingToRetry:
            // The extension (or its retry) goes on; it arms when it finishes (and writes still
            // held after it are reported again). Its target was computed from the size known
            // then, which is still the best guess.
            self.capacity = self.capacity.map { max($0, capacity) } ?? capacity
            guard writesHeld else { return [] }
            noSpaceDuringExtension = true
            return [.report(.writesHeld), .report(.coalesced)]
        case .disconnected, .arming, .armed, .atMaximum:
            self.capacity = capacity
            guard writesHeld else { return settle() }
            if policy.isAtMaximum(capacity: capacity) {
                return [.report(.writesHeld)] + settle() + [.report(.noSpaceAtMaximum(capacity: capacity))]
            }
            return [.report(.writesHeld)] + startExtension(now: now)
        }
    }

    /// The connection to the daemon was lost: whatever was armed is unknown now.
    public mutating func disconnected() {
        isConnected = false
        switch phase {
        case .arming, .armed, .atMaximum: phase = .disconnected
        case .disconnected, .extending, .waitingToRetry: break
        }
    }

    /// The threshold asked for by `.arm` is set, and `highestOffset` (and whether writes are
    /// held, if asked) was read after that.
    public mutating func armed(threshold: UInt64, highestOffset: UInt64, writesHeld: Bool = false, now: Instant) -> [Action] {
        guard phase == .arming(threshold: threshold) else { return [] }
        if writesHeld {
            return [.report(.writesHeld)] + startExtension(now: now)
        }
        // QEMU fires when a write ends past the threshold.
        if highestOffset > threshold {
            return [.report(.alreadyPastThreshold(highestOffset: highestOffset, threshold: threshold))] + startExtension(now: now)
        }
        phase = .armed(threshold: threshold)
        return []
    }

    // MARK: Events

    /// `BLOCK_WRITE_THRESHOLD` for this node, with the threshold it reports.
    public mutating func thresholdExceeded(writeThreshold: UInt64, now: Instant) -> [Action] {
        switch phase {
        case .arming(let threshold), .armed(let threshold):
            guard writeThreshold == threshold else { return [.report(.stale(writeThreshold: writeThreshold))] }
            return startExtension(now: now)
        case .extending, .waitingToRetry:
            return [.report(.coalesced)]
        case .atMaximum, .disconnected:
            return [.report(.stale(writeThreshold: writeThreshold))]
        }
    }

    /// `BLOCK_IO_ERROR` with `nospace: true` for this node: a write needed space now.
    public mutating func noSpace(now: Instant) -> [Action] {
        switch phase {
        case .arming, .armed, .disconnected:
            // Disconnected cannot deliver events; a capacity is known once connected.
            return capacity == nil ? [] : startExtension(now: now)
        case .extending, .waitingToRetry:
            noSpaceDuringExtension = true
            return [.report(.coalesced)]
        case .atMaximum:
            return [.report(.noSpaceAtMaximum(capacity: capacity ?? 0))]
        }
    }

    // MARK: Extensions

    /// The extension finished and the daemon now sees `capacity` bytes.
    public mutating func extendSucceeded(capacity newCapacity: UInt64, now: Instant) -> [Action] {
        guard case .extending(let running) = phase else { return [] }
        failures = 0
        capacity = newCapacity
        let report = Action.report(.extended(from: running.from, to: newCapacity, latency: running.started.duration(to: now)))
        guard isConnected else {
            phase = .disconnected
            return [report]
        }
        return [report] + settle()
    }

    /// The extension failed: retry after the backoff.
    public mutating func extendFailed(now: Instant) -> [Action] {
        guard case .extending = phase else { return [] }
        failures += 1
        let delay = backoff.delay(afterFailures: failures)
        let due = now.advanced(by: delay)
        phase = .waitingToRetry(until: due)
        return [.retry(at: due, after: delay, failures: failures)]
    }

    /// The time asked for by `.retry` has come.
    public mutating func retryDue(now: Instant) -> [Action] {
        guard case .waitingToRetry(let due) = phase, now >= due else { return [] }
        return startExtension(now: now)
    }

    // MARK: Private

    /// Arms the threshold for the known size, or stops at the maximum.
    private mutating func settle() -> [Action] {
        guard let capacity else { return [] }
        let checkingHeldWrites = noSpaceDuringExtension
        noSpaceDuringExtension = false
        if policy.isAtMaximum(capacity: capacity) {
            let already = phase == .atMaximum
            phase = .atMaximum
            return already ? [] : [.report(.reachedMaximum(capacity: capacity))]
        }
        let threshold = policy.threshold(capacity: capacity)
        phase = .arming(threshold: threshold)
        return [.arm(threshold: threshold, checkingHeldWrites: checkingHeldWrites)]
    }

    private mutating func startExtension(now: Instant) -> [Action] {
        guard let capacity else { return [] }
        if policy.isAtMaximum(capacity: capacity) {
            phase = .atMaximum
            return [.report(.reachedMaximum(capacity: capacity))]
        }
        let running = Extension(from: capacity, to: policy.nextSize(capacity: capacity), attempt: failures + 1, started: now)
        phase = .extending(running)
        return [.extend(from: running.from, to: running.to, attempt: running.attempt)]
    }
}
