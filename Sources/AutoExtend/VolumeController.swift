import JSON
import Logging
import QMPClient

/// Runs one volume's `VolumeStateMachine`: feeds it connections, events and results, and
/// carries out its actions (arming over the daemon session, extending with the backend,
/// retrying on the clock), logging and counting each.
///
/// Actions run in their own tasks so that events keep flowing while an extension is in
/// flight; the state machine decides what a late result is worth.
public actor VolumeController<C: Clock> where C.Duration == Duration, C.Instant: Sendable {
    public nonisolated let configuration: VolumeConfiguration
    private let backend: any ExtendBackend
    private let clock: C
    private let backoff: RetryBackoff
    private let metrics: VolumeMetrics
    private let logger: Logger

    private var machine: VolumeStateMachine<C.Instant>?
    private var session: (any VolumeDaemonSession)?
    private var node: VolumeNodeInfo?
    /// Bumped at each attach and detach: results of an older connection are dropped.
    private var generation = 0
    private var retry: Task<Void, Never>?
    private var running: [Int: Task<Void, Never>] = [:]
    private var nextTaskNumber = 0

    public init(
        configuration: VolumeConfiguration, backend: any ExtendBackend, clock: C, backoff: RetryBackoff,
        metrics: VolumeMetrics, logger: Logger
    ) {
        self.configuration = configuration
        self.backend = backend
        self.clock = clock
        self.backoff = backoff
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "node"] = .string(configuration.nodeName)
        self.logger = logger
    }

    /// The state machine's phase (nil before the first connection).
    public var phase: VolumeStateMachine<C.Instant>.Phase? { machine?.phase }

    /// Whether an event naming `nodeName` concerns this volume: its own node, or a format
    /// node on it (I/O errors are reported on the export's node).
    public func concerns(_ nodeName: String) -> Bool {
        // Before the first attach, only the configured node is known.
        (node?.eventNodeNames ?? [configuration.nodeName]).contains(nodeName)
    }

    /// A (re)connected daemon reports the node as `info`, and whether an export on it holds
    /// writes for lack of space (then it is extended at once: the event saying so may have
    /// been sent while no controller listened).
    public func attach(_ session: any VolumeDaemonSession, node info: VolumeNodeInfo, writesHeld: Bool = false) throws(ConfigurationError) {
        if machine == nil {
            let maximum = try Self.maximum(configuration, info)
            let policy = ExtendPolicy(chunk: configuration.chunk, utilizationPercent: configuration.utilizationPercent, maximum: maximum)
            machine = VolumeStateMachine(policy: policy, backoff: backoff)
            metrics.maximum.set(Int64(clamping: maximum))
            logger.info("managing volume", metadata: [
                "path": .string(info.filename), "driver": .string(info.driver), "backend": .string(backend.summary),
                "chunk": .stringConvertible(policy.chunk), "watermark": .stringConvertible(policy.watermark),
                "maximum": .stringConvertible(maximum),
            ])
        }
        generation += 1
        self.session = session
        node = info
        metrics.capacity.set(Int64(clamping: info.capacity))
        perform(machine!.connected(capacity: info.capacity, writesHeld: writesHeld, now: clock.now))
    }

    /// The daemon connection is gone.
    public func detach() {
        generation += 1
        session = nil
        machine?.disconnected()
        metrics.threshold.set(Int64(0))
    }

    /// An event from the daemon (any node: those of other volumes are ignored).
    public func handle(_ event: QMPEvent) {
        guard machine != nil, let nodeName = event.data["node-name"]?.stringValue else { return }
        switch event.name {
        case "BLOCK_WRITE_THRESHOLD" where nodeName == configuration.nodeName:
            guard let threshold = event.data["write-threshold"]?.unsignedValue else { return }
            let exceeded = event.data["amount-exceeded"]?.unsignedValue ?? 0
            logger.info("write threshold exceeded", metadata: ["threshold": .stringConvertible(threshold), "exceeded-by": .stringConvertible(exceeded)])
            metrics.thresholdEvents.increment()
            metrics.threshold.set(Int64(0))
            perform(machine!.thresholdExceeded(writeThreshold: threshold, now: clock.now))
        case "BLOCK_IO_ERROR" where event.data["nospace"]?.boolValue == true && concerns(nodeName):
            logger.warning("a write found no space", metadata: [
                "event-node": .string(nodeName), "operation": .string(event.data["operation"]?.stringValue ?? ""),
                "action": .string(event.data["action"]?.stringValue ?? ""),
            ])
            metrics.noSpaceEvents.increment()
            perform(machine!.noSpace(now: clock.now))
        default:
            break
        }
    }

    /// Waits until no action is running (tests; a retry waiting on the clock is not running).
    func quiesce() async {
        while let task = running.values.first {
            await task.value
        }
    }

    // MARK: Actions

    private func perform(_ actions: [VolumeStateMachine<C.Instant>.Action]) {
        for action in actions {
            switch action {
            case .arm(let threshold, let checkingHeldWrites):
                let generation = self.generation
                spawn { await $0.arm(threshold, checkingHeldWrites: checkingHeldWrites, generation: generation) }
            case .extend(let from, let to, let attempt):
                spawn { await $0.extend(from: from, to: to, attempt: attempt) }
            case .retry(let due, let delay, let failures):
                logger.warning("retrying the extension after a backoff", metadata: [
                    "failures": .stringConvertible(failures), "delay-ms": .string(Self.milliseconds(delay)),
                ])
                retry?.cancel()
                retry = Task { [clock] in
                    guard (try? await clock.sleep(until: due, tolerance: nil)) != nil else { return }
                    self.retryDue()
                }
            case .report(let report):
                record(report)
            }
        }
    }

    private func spawn(_ work: @escaping @Sendable (isolated VolumeController) async -> Void) {
        let number = nextTaskNumber
        nextTaskNumber += 1
        running[number] = Task {
            await work(self)
            self.finished(number)
        }
    }

    private func finished(_ number: Int) {
        running[number] = nil
    }

    private func arm(_ threshold: UInt64, checkingHeldWrites: Bool, generation: Int) async {
        guard generation == self.generation, let session else { return }
        do {
            try await session.setWriteThreshold(configuration.nodeName, to: threshold)
            let highest = try await session.highestOffset(configuration.nodeName)
            let writesHeld = checkingHeldWrites ? try await session.nodesHoldingWrites().contains(where: concerns) : false
            guard generation == self.generation else { return }
            metrics.threshold.set(Int64(clamping: threshold))
            metrics.highestOffset.set(Int64(clamping: highest))
            logger.info("write threshold armed", metadata: ["threshold": .stringConvertible(threshold), "highest-offset": .stringConvertible(highest)])
            perform(machine!.armed(threshold: threshold, highestOffset: highest, writesHeld: writesHeld, now: clock.now))
        } catch {
            guard generation == self.generation else { return }
            // The session is unusable for this node (closed, or the node went away):
            // start over with a fresh connection and a fresh look at the node.
            logger.error("arming the write threshold failed; reconnecting", metadata: ["error": .string("\(error)")])
            await session.reconnect()
        }
    }

    private func extend(from: UInt64, to: UInt64, attempt: Int) async {
        guard let node, let machine else { return }
        let request = ExtendRequest(
            nodeName: configuration.nodeName, path: node.filename, currentSize: from, requestedSize: to,
            maximumSize: machine.policy.maximum, attempt: attempt)
        logger.info("extending", metadata: ["from": .stringConvertible(from), "to": .stringConvertible(to), "attempt": .stringConvertible(attempt)])
        do {
            try await backend.extend(request)
            let capacity = try await sizeAfterExtension(request)
            perform(self.machine!.extendSucceeded(capacity: capacity, now: clock.now))
        } catch {
            logger.error("extension failed", metadata: [
                "from": .stringConvertible(from), "to": .stringConvertible(to), "attempt": .stringConvertible(attempt),
                "error": .string("\(error)"),
            ])
            metrics.failedExtensions.increment()
            perform(self.machine!.extendFailed(now: clock.now))
        }
    }

    /// The volume's size once the backend is done, read where the daemon reads it (its
    /// file or device), as the daemon will see it at the next write past the old end:
    /// asking the daemon would put its monitor, busy under write load, on the critical
    /// path. Only a path not visible from here is asked of the daemon; without a
    /// connection the backend's word is taken (the size is read again on reconnecting).
    private func sizeAfterExtension(_ request: ExtendRequest) async throws -> UInt64 {
        let size: UInt64
        if let local = FileGrowth.size(of: request.path) {
            size = local
        } else if let session {
            let generation = self.generation
            do {
                size = try await session.nodeInfo(configuration.nodeName).capacity
            } catch {
                if generation != self.generation { return request.requestedSize }
                throw error
            }
        } else {
            return request.requestedSize
        }
        guard size >= request.requestedSize else {
            throw ExtendError("the backend reported success but \(request.path) has \(size) bytes, not \(request.requestedSize)")
        }
        return size
    }

    private func retryDue() {
        retry = nil
        perform(machine!.retryDue(now: clock.now))
    }

    private func record(_ report: VolumeStateMachine<C.Instant>.Report) {
        switch report {
        case .alreadyPastThreshold(let highest, let threshold):
            logger.info("the highest offset is already past the threshold", metadata: [
                "highest-offset": .stringConvertible(highest), "threshold": .stringConvertible(threshold),
            ])
            metrics.thresholdEvents.increment()
        case .coalesced:
            logger.debug("event coalesced into the extension in flight")
            metrics.coalescedEvents.increment()
        case .stale(let threshold):
            logger.debug("stale threshold event ignored", metadata: ["threshold": .stringConvertible(threshold)])
        case .reachedMaximum(let capacity):
            logger.warning("the volume has its maximum size: no further extension", metadata: ["size": .stringConvertible(capacity)])
            metrics.atMaximum.set(Int64(1))
            metrics.capacity.set(Int64(clamping: capacity))
        case .writesHeld:
            logger.warning("the daemon holds writes for lack of space: extending at once")
            metrics.noSpaceEvents.increment()
        case .noSpaceAtMaximum(let capacity):
            logger.error("a write found no space and the volume is at its maximum size", metadata: ["size": .stringConvertible(capacity)])
        case .extended(let from, let to, let latency):
            logger.info("extended", metadata: [
                "from": .stringConvertible(from), "to": .stringConvertible(to),
                "latency-ms": .string(Self.milliseconds(latency)),
            ])
            metrics.extensions.increment()
            metrics.extensionLatency.record(latency)
            metrics.capacity.set(Int64(clamping: to))
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return "\(microseconds / 1000).\(String(microseconds % 1000 + 1000).dropFirst())"
    }

    /// The configured maximum, or the one implied by the image on the volume.
    static func maximum(_ configuration: VolumeConfiguration, _ info: VolumeNodeInfo) throws(ConfigurationError) -> UInt64 {
        if let maximum = configuration.maximum { return maximum }
        switch (info.formatDriver, info.formatVirtualSize) {
        case ("qcow2"?, let size?): return ExtendPolicy.qcow2Maximum(virtualSize: size)
        case ("raw"?, let size?): return size
        default:
            throw ConfigurationError(
                "node '\(configuration.nodeName)': no maximum size given, and no qcow2 or raw image on it to take one from")
        }
    }
}
