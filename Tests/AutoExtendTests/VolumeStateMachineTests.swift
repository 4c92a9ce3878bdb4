import Testing
@testable import AutoExtend

@Suite struct VolumeStateMachineTests {
    typealias Machine = VolumeStateMachine<ManualClock.Instant>
    static let mib: UInt64 = 1 << 20
    let mib = Self.mib
    /// 64 MiB chunks, extend when less than 32 MiB is free, at most 256 MiB.
    let policy = ExtendPolicy(chunk: 64 * mib, utilizationPercent: 50, maximum: 256 * mib)
    let backoff = RetryBackoff(initial: .milliseconds(100), maximum: .milliseconds(400))

    func at(_ milliseconds: Int64) -> ManualClock.Instant {
        ManualClock.Instant(offset: .milliseconds(milliseconds))
    }

    /// A machine connected to a 64 MiB volume, threshold armed at 32 MiB.
    func armedMachine() -> Machine {
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.connected(capacity: 64 * mib, now: at(0)) == [.arm(threshold: 32 * mib)])
        #expect(machine.armed(threshold: 32 * mib, highestOffset: 0, now: at(0)) == [])
        #expect(machine.phase == .armed(threshold: 32 * mib))
        return machine
    }

    @Test func connectingArmsAtCapacityMinusWatermark() {
        _ = armedMachine()
    }

    @Test func aThresholdEventExtendsByOneChunkThenRearms() {
        var machine = armedMachine()
        #expect(machine.thresholdExceeded(writeThreshold: 32 * mib, now: at(10)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 1)])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(13)) == [
            .report(.extended(from: 64 * mib, to: 128 * mib, latency: .milliseconds(3))),
            .arm(threshold: 96 * mib),
        ])
        #expect(machine.armed(threshold: 96 * mib, highestOffset: 40 * mib, now: at(14)) == [])
        #expect(machine.capacity == 128 * mib)
    }

    @Test func aThresholdAlreadyPassedWhenArmingCountsAsAnEvent() {
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.connected(capacity: 64 * mib, now: at(0)) == [.arm(threshold: 32 * mib)])
        #expect(machine.armed(threshold: 32 * mib, highestOffset: 50 * mib, now: at(0)) == [
            .report(.alreadyPastThreshold(highestOffset: 50 * mib, threshold: 32 * mib)),
            .extend(from: 64 * mib, to: 128 * mib, attempt: 1),
        ])
        // Exactly at the threshold is not past it (QEMU fires when a write ends beyond it).
        var exact = Machine(policy: policy, backoff: backoff)
        _ = exact.connected(capacity: 64 * mib, now: at(0))
        #expect(exact.armed(threshold: 32 * mib, highestOffset: 32 * mib, now: at(0)) == [])
    }

    @Test func eventsDuringAnExtensionAreCoalesced() {
        var machine = armedMachine()
        #expect(machine.thresholdExceeded(writeThreshold: 32 * mib, now: at(0)).count == 1)
        #expect(machine.noSpace(now: at(1)) == [.report(.coalesced)])
        #expect(machine.thresholdExceeded(writeThreshold: 32 * mib, now: at(2)) == [.report(.coalesced)])
        #expect(machine.noSpace(now: at(3)) == [.report(.coalesced)])
        // One extension, then the re-arm decides whether another is needed (asking whether
        // writes are still held: a no-space event was merged).
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(5)).last == .arm(threshold: 96 * mib, checkingHeldWrites: true))
        #expect(machine.armed(threshold: 96 * mib, highestOffset: 100 * mib, now: at(6)) == [
            .report(.alreadyPastThreshold(highestOffset: 100 * mib, threshold: 96 * mib)),
            .extend(from: 128 * mib, to: 192 * mib, attempt: 1),
        ])
    }

    @Test func aNoSpaceEventExtendsLikeAThresholdEvent() {
        var machine = armedMachine()
        #expect(machine.noSpace(now: at(0)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 1)])
    }

    @Test func eventsForAnotherThresholdAreStale() {
        var machine = armedMachine()
        #expect(machine.thresholdExceeded(writeThreshold: 7, now: at(0)) == [.report(.stale(writeThreshold: 7))])
        #expect(machine.phase == .armed(threshold: 32 * mib))
    }

    @Test func aLateArmingResultIsIgnored() {
        var machine = Machine(policy: policy, backoff: backoff)
        _ = machine.connected(capacity: 64 * mib, now: at(0))
        // The event came before the highest offset was read: extending already.
        #expect(machine.thresholdExceeded(writeThreshold: 32 * mib, now: at(0)).count == 1)
        #expect(machine.armed(threshold: 32 * mib, highestOffset: 40 * mib, now: at(1)) == [])
        #expect(machine.phase == .extending(.init(from: 64 * mib, to: 128 * mib, attempt: 1, started: at(0))))
    }

    @Test func theMaximumIsNeverExceededAndThenNothingIsArmed() {
        var machine = Machine(policy: policy, backoff: backoff)
        _ = machine.connected(capacity: 224 * mib, now: at(0))
        #expect(machine.armed(threshold: 192 * mib, highestOffset: 200 * mib, now: at(0)).last == .extend(from: 224 * mib, to: 256 * mib, attempt: 1))
        #expect(machine.extendSucceeded(capacity: 256 * mib, now: at(1)) == [
            .report(.extended(from: 224 * mib, to: 256 * mib, latency: .milliseconds(1))),
            .report(.reachedMaximum(capacity: 256 * mib)),
        ])
        #expect(machine.phase == .atMaximum)
        // Writes that find no space are reported, nothing else happens: no busy loop.
        for time in 2...5 {
            #expect(machine.noSpace(now: at(Int64(time))) == [.report(.noSpaceAtMaximum(capacity: 256 * mib))])
        }
        #expect(machine.phase == .atMaximum)
    }

    @Test func aVolumeConnectedAtItsMaximumIsReportedOnce() {
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.connected(capacity: 300 * mib, now: at(0)) == [.report(.reachedMaximum(capacity: 300 * mib))])
        machine.disconnected()
        #expect(machine.connected(capacity: 300 * mib, now: at(0)) == [.report(.reachedMaximum(capacity: 300 * mib))])
        #expect(machine.connected(capacity: 300 * mib, now: at(0)) == [])
    }

    @Test func failuresAreRetriedWithDoublingBackoff() {
        var machine = armedMachine()
        #expect(machine.noSpace(now: at(0)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 1)])
        #expect(machine.extendFailed(now: at(5)) == [.retry(at: at(105), after: .milliseconds(100), failures: 1)])
        // Events while waiting are coalesced; a premature wake-up does nothing.
        #expect(machine.thresholdExceeded(writeThreshold: 32 * mib, now: at(50)) == [.report(.coalesced)])
        #expect(machine.retryDue(now: at(104)) == [])
        #expect(machine.retryDue(now: at(105)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 2)])
        #expect(machine.extendFailed(now: at(110)) == [.retry(at: at(310), after: .milliseconds(200), failures: 2)])
        #expect(machine.retryDue(now: at(310)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 3)])
        #expect(machine.extendFailed(now: at(320)) == [.retry(at: at(720), after: .milliseconds(400), failures: 3)])
        #expect(machine.retryDue(now: at(720)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 4)])
        #expect(machine.extendFailed(now: at(730)) == [.retry(at: at(1130), after: .milliseconds(400), failures: 4)])
        #expect(machine.retryDue(now: at(1130)).count == 1)
        // Success resets the count; latency is that of the successful attempt.
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(1131)).first == .report(.extended(from: 64 * mib, to: 128 * mib, latency: .milliseconds(1))))
        _ = machine.armed(threshold: 96 * mib, highestOffset: 0, now: at(1132))
        #expect(machine.noSpace(now: at(2000)) == [.extend(from: 128 * mib, to: 192 * mib, attempt: 1)])
        #expect(machine.extendFailed(now: at(2000)) == [.retry(at: at(2100), after: .milliseconds(100), failures: 1)])
    }

    @Test func anExtensionFinishingWhileDisconnectedArmsOnReconnect() {
        var machine = armedMachine()
        _ = machine.noSpace(now: at(0))
        machine.disconnected()
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(2)) == [
            .report(.extended(from: 64 * mib, to: 128 * mib, latency: .milliseconds(2))),
        ])
        #expect(machine.phase == .disconnected)
        #expect(machine.connected(capacity: 128 * mib, now: at(0)) == [.arm(threshold: 96 * mib)])
    }

    @Test func reconnectingDuringAnExtensionLetsItFinishFirst() {
        var machine = armedMachine()
        _ = machine.noSpace(now: at(0))
        machine.disconnected()
        #expect(machine.connected(capacity: 64 * mib, now: at(0)) == [])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(3)).last == .arm(threshold: 96 * mib))
    }

    @Test func reconnectingReadsTheSizeAfresh() {
        var machine = armedMachine()
        machine.disconnected()
        #expect(machine.phase == .disconnected)
        // Grown by someone else meanwhile.
        #expect(machine.connected(capacity: 192 * mib, now: at(0)) == [.arm(threshold: 160 * mib)])
        #expect(machine.armed(threshold: 160 * mib, highestOffset: 170 * mib, now: at(0)).last == .extend(from: 192 * mib, to: 256 * mib, attempt: 1))
    }

    @Test func writesHeldOnConnectingExtendAtOnceWithoutArmingFirst() {
        // A restarted controller: the daemon's event went out while nobody listened, and the
        // held write is not in the highest offset, so arming would find nothing to do.
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.connected(capacity: 64 * mib, writesHeld: true, now: at(7)) == [
            .report(.writesHeld), .extend(from: 64 * mib, to: 128 * mib, attempt: 1),
        ])
        #expect(machine.phase == .extending(.init(from: 64 * mib, to: 128 * mib, attempt: 1, started: at(7))))
        // The held writes' event, delivered too, is merged into the extension.
        #expect(machine.noSpace(now: at(8)) == [.report(.coalesced)])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(9)).last == .arm(threshold: 96 * mib, checkingHeldWrites: true))
    }

    @Test func writesHeldOnReconnectingWhileArmedOrArmingExtend() {
        var armed = armedMachine()
        armed.disconnected()
        #expect(armed.connected(capacity: 64 * mib, writesHeld: true, now: at(1)).last == .extend(from: 64 * mib, to: 128 * mib, attempt: 1))
        // Reconnected while the arming of an earlier connection was under way: its late
        // result does not undo the extension.
        var arming = Machine(policy: policy, backoff: backoff)
        _ = arming.connected(capacity: 64 * mib, now: at(0))
        #expect(arming.connected(capacity: 64 * mib, writesHeld: true, now: at(1)).last == .extend(from: 64 * mib, to: 128 * mib, attempt: 1))
        #expect(arming.armed(threshold: 32 * mib, highestOffset: 0, now: at(2)) == [])
        #expect(arming.phase == .extending(.init(from: 64 * mib, to: 128 * mib, attempt: 1, started: at(1))))
    }

    @Test func writesHeldDuringAnExtensionAreLeftToIt() {
        var machine = armedMachine()
        _ = machine.noSpace(now: at(0))
        machine.disconnected()
        #expect(machine.connected(capacity: 64 * mib, writesHeld: true, now: at(1)) == [.report(.writesHeld), .report(.coalesced)])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(3)).last == .arm(threshold: 96 * mib, checkingHeldWrites: true))
    }

    @Test func writesHeldAtTheMaximumAreOnlyReported() {
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.connected(capacity: 256 * mib, writesHeld: true, now: at(0)) == [
            .report(.writesHeld), .report(.reachedMaximum(capacity: 256 * mib)), .report(.noSpaceAtMaximum(capacity: 256 * mib)),
        ])
        #expect(machine.phase == .atMaximum)
    }

    @Test func aNoSpaceEventWhileArmingExtendsAndTheLateArmingIsIgnored() {
        var machine = Machine(policy: policy, backoff: backoff)
        _ = machine.connected(capacity: 64 * mib, now: at(0))
        #expect(machine.noSpace(now: at(1)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 1)])
        #expect(machine.armed(threshold: 32 * mib, highestOffset: 0, now: at(2)) == [])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(3)).last == .arm(threshold: 96 * mib))
    }

    @Test func aNoSpaceEventBeforeAnyConnectionIsIgnored() {
        var machine = Machine(policy: policy, backoff: backoff)
        #expect(machine.noSpace(now: at(0)) == [])
        #expect(machine.phase == .disconnected)
    }

    @Test func writesStillHeldAfterAnExtensionThatWasNotEnoughExtendAgain() {
        // The daemon ran the held write again once the volume grew, it found no space again
        // and said so while the extension was still finishing here: merged into it, and the
        // highest offset does not show the write. The arming after it asks.
        var machine = armedMachine()
        #expect(machine.noSpace(now: at(0)) == [.extend(from: 64 * mib, to: 128 * mib, attempt: 1)])
        #expect(machine.noSpace(now: at(1)) == [.report(.coalesced)])
        #expect(machine.extendSucceeded(capacity: 128 * mib, now: at(2)).last == .arm(threshold: 96 * mib, checkingHeldWrites: true))
        #expect(machine.armed(threshold: 96 * mib, highestOffset: 60 * mib, writesHeld: true, now: at(3)) == [
            .report(.writesHeld), .extend(from: 128 * mib, to: 192 * mib, attempt: 1),
        ])
        // Enough this time: the next arming asks nothing, and nothing more happens.
        #expect(machine.extendSucceeded(capacity: 192 * mib, now: at(4)).last == .arm(threshold: 160 * mib))
        #expect(machine.armed(threshold: 160 * mib, highestOffset: 60 * mib, now: at(5)) == [])
        #expect(machine.phase == .armed(threshold: 160 * mib))
    }
}
