import JSON
import Logging
import QMPClient
import Synchronization
import Testing
@testable import AutoExtend

/// The controller over a fake daemon and a fake backend, on a manual clock.
@Suite struct VolumeControllerTests {
    static let mib: UInt64 = 1 << 20
    let mib = Self.mib

    /// The daemon's side: a volume whose size the backend changes.
    final class FakeDaemon: VolumeDaemonSession {
        struct State {
            var capacity: UInt64
            var highestOffset: UInt64 = 0
            var thresholds: [UInt64] = []
            var reconnects = 0
            var nodesHoldingWrites: Set<String> = []
            var heldWritesQueries = 0
        }

        let state: Mutex<State>

        init(capacity: UInt64) {
            state = Mutex(State(capacity: capacity))
        }

        var thresholds: [UInt64] { state.withLock { $0.thresholds } }

        func nodeInfo(_ nodeName: String) async throws -> VolumeNodeInfo {
            VolumeNodeInfo(
                nodeName: nodeName, driver: "host_device", filename: "/nonexistent/volume", capacity: state.withLock { $0.capacity },
                formatDriver: "qcow2", formatVirtualSize: 2 << 30, formatNodeNames: ["disk0"])
        }

        func setWriteThreshold(_ nodeName: String, to threshold: UInt64) async throws {
            state.withLock { $0.thresholds.append(threshold) }
        }

        func highestOffset(_ nodeName: String) async throws -> UInt64 {
            state.withLock { $0.highestOffset }
        }

        func nodesHoldingWrites() async throws -> Set<String> {
            state.withLock { state in
                state.heldWritesQueries += 1
                return state.nodesHoldingWrites
            }
        }

        func reconnect() async {
            state.withLock { $0.reconnects += 1 }
        }
    }

    /// Grows the fake daemon's volume, failing the first `failures` attempts; with `gated`,
    /// each attempt waits for `release()`.
    final class FakeBackend: ExtendBackend {
        struct State {
            var requests: [ExtendRequest] = []
            var failures: Int
            var gates: [CheckedContinuation<Void, Never>] = []
            var released = 0
        }

        let daemon: FakeDaemon
        let gated: Bool
        let state: Mutex<State>

        init(daemon: FakeDaemon, failures: Int = 0, gated: Bool = false) {
            self.daemon = daemon
            self.gated = gated
            state = Mutex(State(failures: failures))
        }

        var summary: String { "fake" }
        var requests: [ExtendRequest] { state.withLock { $0.requests } }

        func extend(_ request: ExtendRequest) async throws(ExtendError) {
            state.withLock { $0.requests.append(request) }
            if gated {
                await withCheckedContinuation { continuation in
                    let open = state.withLock { state -> Bool in
                        if state.released > 0 {
                            state.released -= 1
                            return true
                        }
                        state.gates.append(continuation)
                        return false
                    }
                    if open { continuation.resume() }
                }
            }
            let fail = state.withLock { state -> Bool in
                defer { state.failures -= 1 }
                return state.failures > 0
            }
            if fail { throw ExtendError("disk on fire") }
            daemon.state.withLock { $0.capacity = request.requestedSize }
        }

        func release() {
            let gate = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.gates.isEmpty {
                    state.released += 1
                    return nil
                }
                return state.gates.removeFirst()
            }
            gate?.resume()
        }

        func waitForRequests(_ count: Int) async {
            while requests.count < count { await Task.yield() }
        }
    }

    /// A controller of "vol0" (64 MiB chunks, 50 % utilization), on a manual clock, attached to
    /// a fake daemon whose volume has 64 MiB, and quiet after the attach.
    private func attachedController(
        failures: Int = 0, gated: Bool = false, maximum: UInt64 = 1 << 30, writesHeld: Bool = false
    ) async throws -> (
        clock: ManualClock, daemon: FakeDaemon, backend: FakeBackend, metrics: AutoExtendMetrics, controller: VolumeController<ManualClock>
    ) {
        let clock = ManualClock()
        let daemon = FakeDaemon(capacity: 64 * mib)
        let backend = FakeBackend(daemon: daemon, failures: failures, gated: gated)
        let metrics = AutoExtendMetrics()
        let controller = VolumeController(
            configuration: VolumeConfiguration(nodeName: "vol0", backend: .loop(device: nil), chunk: 64 * mib, utilizationPercent: 50, maximum: maximum),
            backend: backend, clock: clock, backoff: RetryBackoff(initial: .milliseconds(100), maximum: .seconds(1)),
            metrics: metrics.volume("vol0"), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        try await controller.attach(daemon, node: try await daemon.nodeInfo("vol0"), writesHeld: writesHeld)
        await controller.quiesce()
        return (clock, daemon, backend, metrics, controller)
    }

    func thresholdEvent(_ threshold: UInt64) -> QMPEvent {
        QMPEvent(name: "BLOCK_WRITE_THRESHOLD", data: ["node-name": "vol0", "amount-exceeded": 65536, "write-threshold": .unsigned(threshold)])
    }

    let noSpaceEvent = QMPEvent(name: "BLOCK_IO_ERROR", data: [
        "device": "", "node-name": "disk0", "operation": "write", "action": "stop", "nospace": true, "reason": "No space left on device",
    ])

    @Test func eventsDuringAnExtensionAreCoalescedIntoIt() async throws {
        let (_, daemon, backend, _, controller) = try await attachedController(gated: true)
        #expect(daemon.thresholds == [32 * mib])

        await controller.handle(thresholdEvent(32 * mib))
        await backend.waitForRequests(1)
        await controller.handle(noSpaceEvent)
        await controller.handle(thresholdEvent(32 * mib))
        await controller.handle(noSpaceEvent)
        backend.release()
        await controller.quiesce()

        #expect(backend.requests.map(\.requestedSize) == [128 * mib])
        #expect(daemon.thresholds == [32 * mib, 96 * mib])
        #expect(await controller.phase == .armed(threshold: 96 * mib))
    }

    @Test func aFailingBackendIsRetriedWithBackoffOnTheClock() async throws {
        let (clock, daemon, backend, metrics, controller) = try await attachedController(failures: 2)

        await controller.handle(noSpaceEvent)
        await controller.quiesce()
        await clock.waitForSleepers()
        #expect(clock.pendingDeadlines == [ManualClock.Instant(offset: .milliseconds(100))])
        #expect(backend.requests.count == 1)

        clock.advance(by: .milliseconds(99))
        #expect(backend.requests.count == 1)
        clock.advance(by: .milliseconds(1))
        await backend.waitForRequests(2)
        await controller.quiesce()
        await clock.waitForSleepers()
        // The second failure doubles the wait.
        #expect(clock.pendingDeadlines == [ManualClock.Instant(offset: .milliseconds(300))])

        clock.advance(by: .milliseconds(200))
        await backend.waitForRequests(3)
        await controller.quiesce()
        #expect(backend.requests.map(\.attempt) == [1, 2, 3])
        #expect(backend.requests.allSatisfy { $0.requestedSize == 128 * mib && $0.currentSize == 64 * mib })
        #expect(daemon.thresholds == [32 * mib, 96 * mib])
        #expect(clock.pendingDeadlines.isEmpty)
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"highwater_autoextend_failed_extensions_total{node="vol0"} 2"#))
        #expect(exposition.contains(#"highwater_autoextend_extensions_total{node="vol0"} 1"#))
        #expect(exposition.contains(#"highwater_autoextend_nospace_events_total{node="vol0"} 1"#))
    }

    @Test func atTheMaximumEventsAreOnlyReported() async throws {
        let (clock, daemon, backend, metrics, controller) = try await attachedController(maximum: 100 * mib)
        await controller.handle(thresholdEvent(32 * mib))
        await controller.quiesce()
        #expect(backend.requests.map(\.requestedSize) == [100 * mib])
        #expect(await controller.phase == .atMaximum)

        for _ in 0..<5 { await controller.handle(noSpaceEvent) }
        await controller.quiesce()
        #expect(backend.requests.count == 1)
        #expect(daemon.thresholds == [32 * mib])
        #expect(clock.pendingDeadlines.isEmpty)
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"highwater_autoextend_volume_at_maximum{node="vol0"} 1"#))
    }

    @Test func eventsOfOtherNodesAreIgnored() async throws {
        let (_, _, backend, _, controller) = try await attachedController()
        await controller.handle(QMPEvent(name: "BLOCK_WRITE_THRESHOLD", data: ["node-name": "vol1", "amount-exceeded": 1, "write-threshold": .unsigned(32 * mib)]))
        var otherExport = noSpaceEvent
        otherExport.data["node-name"] = "disk1"
        await controller.handle(otherExport)
        var notNoSpace = noSpaceEvent
        notNoSpace.data["nospace"] = false
        await controller.handle(notNoSpace)
        await controller.quiesce()
        #expect(backend.requests.isEmpty)
        #expect(await controller.phase == .armed(threshold: 32 * mib))
    }

    @Test func reattachingAfterARestartFindsAThresholdAlreadyPassed() async throws {
        let (_, daemon, backend, _, controller) = try await attachedController()
        await controller.detach()
        // Meanwhile writes went past the threshold and nobody heard the event.
        daemon.state.withLock { $0.highestOffset = 60 * mib }
        try await controller.attach(daemon, node: try await daemon.nodeInfo("vol0"))
        await controller.quiesce()
        #expect(backend.requests.map(\.requestedSize) == [128 * mib])
        #expect(daemon.thresholds == [32 * mib, 32 * mib, 96 * mib])
    }

    @Test func aControllerAttachingWhileWritesAreHeldExtendsAtOnce() async throws {
        // The write that found no space is not in the highest offset: arming alone would
        // find nothing to do, and the stall's event went out before this controller listened.
        let (clock, daemon, backend, metrics, controller) = try await attachedController(writesHeld: true)
        #expect(backend.requests.map(\.requestedSize) == [128 * mib])
        #expect(daemon.thresholds == [96 * mib])
        #expect(await controller.phase == .armed(threshold: 96 * mib))
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"highwater_autoextend_nospace_events_total{node="vol0"} 1"#))
        #expect(exposition.contains(#"highwater_autoextend_extensions_total{node="vol0"} 1"#))
        #expect(clock.pendingDeadlines.isEmpty)
    }

    @Test func aNoSpaceEventMergedIntoAnExtensionIsCheckedWhenArmingAfterIt() async throws {
        let (_, daemon, backend, _, controller) = try await attachedController(gated: true)
        await controller.handle(noSpaceEvent)
        await backend.waitForRequests(1)
        // The growth was not enough for a held write: the daemon says so again meanwhile.
        daemon.state.withLock { $0.nodesHoldingWrites = ["disk0"] }
        await controller.handle(noSpaceEvent)
        backend.release()
        await backend.waitForRequests(2)
        daemon.state.withLock { $0.nodesHoldingWrites = [] }
        backend.release()
        await controller.quiesce()
        #expect(backend.requests.map(\.requestedSize) == [128 * mib, 192 * mib])
        #expect(daemon.thresholds == [32 * mib, 96 * mib, 160 * mib])
        #expect(daemon.state.withLock { $0.heldWritesQueries } == 1)
        #expect(await controller.phase == .armed(threshold: 160 * mib))
    }
}
