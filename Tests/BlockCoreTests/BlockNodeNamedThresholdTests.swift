import Dispatch
import Synchronization
import Testing
@testable import BlockCore

/// Named thresholds through the node: events, resizes, independence from the classic
/// threshold, concurrent writers.
@Suite struct BlockNodeNamedThresholdTests {
    private func crossings(_ events: EventRecorder) -> [WriteThresholdCrossing] {
        events.recorded.compactMap { if case .namedWriteThresholdExceeded(let c) = $0 { c } else { nil } }
    }

    private func classicEvents(_ events: EventRecorder) -> [BlockEvent] {
        events.recorded.filter { if case .writeThresholdExceeded = $0 { true } else { false } }
    }

    @Test func writePastABytesThresholdFiresOneEventWithTheNodesContext() throws {
        let (node, _, events) = try makeNode(size: 1 << 20)
        try node.setNamedWriteThreshold("warn", .init(level: .bytes(4096)))
        try node.write(at: 0, [UInt8](repeating: 1, count: 4096))
        #expect(events.recorded.isEmpty)
        try node.write(at: 8000, [UInt8](repeating: 1, count: 200))
        try node.write(at: 9000, [UInt8](repeating: 1, count: 200))
        #expect(crossings(events) == [WriteThresholdCrossing(
            nodeName: "n0", name: "warn", threshold: 4096, amountExceeded: 4104, settings: .init(level: .bytes(4096)),
            cause: .write, nodeSize: 1 << 20, highestOffset: 8200)])
        #expect(node.namedWriteThresholds.map(\.isArmed) == [false])
        #expect(node.lowestArmedThreshold == .max)
    }

    @Test func percentThresholdFollowsResizes() throws {
        let (node, driver, events) = try makeNode(size: 1000)
        try node.setNamedWriteThreshold("p", .init(level: .percent(80)))
        #expect(node.namedWriteThresholds.first?.value == 800)
        try node.truncate(to: 2000)
        #expect(node.namedWriteThresholds.first?.value == 1600)
        #expect(node.lowestArmedThreshold == 1600)
        // A size changed underneath (a grown device) is noticed when the node looks again.
        driver.state.withLock { $0.bytes += [UInt8](repeating: 0, count: 2000) }
        #expect(try node.refreshSize() == 4000)
        #expect(node.namedWriteThresholds.first?.value == 3200)
        try node.write(at: 3000, [UInt8](repeating: 1, count: 300))
        #expect(crossings(events).map(\.amountExceeded) == [100])
        #expect(crossings(events).first?.nodeSize == 4000)
    }

    @Test func growableNodesTakeBytesOnlyAndGrowingByWritesIsNoResize() throws {
        let (node, _, events) = try makeNode(size: 1000, growable: true)
        #expect(throws: BlockError.invalidArgument("Node 'n0' grows with its writes: give its threshold in bytes")) {
            try node.setNamedWriteThreshold("p", .init(level: .percent(50)))
        }
        try node.setNamedWriteThreshold("b", .init(level: .bytes(1500), mode: .reArm))
        try node.write(at: 1000, [UInt8](repeating: 1, count: 1000))
        #expect(node.size == 2000)
        _ = try node.refreshSize()
        #expect(crossings(events).count == 1)
        #expect(node.namedWriteThresholds.first?.isArmed == false)
        // block_resize is a resize, even on a growable node.
        try node.truncate(to: 3000)
        #expect(node.namedWriteThresholds.first?.isArmed == true)
    }

    @Test func reArmingThresholdFiresOncePerGrowth() throws {
        let (node, _, events) = try makeNode(size: 1000)
        try node.setNamedWriteThreshold("grow", .init(level: .percent(80), mode: .reArm))
        for end in stride(from: 100, through: 1000, by: 100) { try node.write(at: UInt64(end - 100), [UInt8](repeating: 1, count: 100)) }
        try node.truncate(to: 2000)
        for end in stride(from: 1100, through: 2000, by: 100) { try node.write(at: UInt64(end - 100), [UInt8](repeating: 1, count: 100)) }
        #expect(crossings(events).map(\.threshold) == [800, 1600])
        #expect(crossings(events).map(\.cause) == [.write, .write])
        #expect(node.namedWriteThresholds.first?.fireCount == 2)
    }

    @Test func oneShotThresholdStaysDisarmedAcrossResizes() throws {
        let (node, _, events) = try makeNode(size: 1000)
        try node.setNamedWriteThreshold("once", .init(level: .percent(50)))
        try node.write(at: 0, [UInt8](repeating: 1, count: 600))
        try node.truncate(to: 4000)
        try node.write(at: 0, [UInt8](repeating: 1, count: 4000))
        #expect(crossings(events).count == 1)
        #expect(node.namedWriteThresholds.first.map { ($0.value, $0.isArmed) } ?? (0, true) == (2000, false))
    }

    @Test func fireIfPastFiresWhenSetAndWhenAResizeLeavesItBehind() throws {
        let (node, _, events) = try makeNode(size: 1000)
        try node.write(at: 0, [UInt8](repeating: 1, count: 700))
        try node.setNamedWriteThreshold("late", .init(level: .bytes(500)))
        #expect(events.recorded.isEmpty)
        try node.setNamedWriteThreshold("now", .init(level: .percent(50), mode: .reArm, fireIfPast: true))
        #expect(crossings(events).map { "\($0.name) \($0.cause) \($0.amountExceeded) \($0.highestOffset)" } == ["now set 200 700"])
        try node.truncate(to: 1200)
        #expect(crossings(events).map(\.cause) == [.set, .resize])
        #expect(crossings(events).last?.amountExceeded == 100)
        try node.truncate(to: 2000)
        #expect(crossings(events).count == 2)
        #expect(node.namedWriteThresholds.last?.isArmed == true)
    }

    @Test func classicAndNamedThresholdsAreIndependent() throws {
        let (node, _, events) = try makeNode(size: 1 << 20)
        node.setWriteThreshold(1000)
        try node.setNamedWriteThreshold("a", .init(level: .bytes(500)))
        try node.setNamedWriteThreshold("b", .init(level: .bytes(2000)))
        #expect(node.lowestArmedThreshold == 500)
        try node.write(at: 0, [UInt8](repeating: 1, count: 600))
        #expect(node.writeThreshold == 1000)
        #expect(node.lowestArmedThreshold == 1000)
        try node.write(at: 0, [UInt8](repeating: 1, count: 1100))
        #expect(classicEvents(events) == [.writeThresholdExceeded(nodeName: "n0", amountExceeded: 100, threshold: 1000)])
        #expect(node.writeThreshold == 0)
        #expect(node.lowestArmedThreshold == 2000)
        // Clearing and setting one kind leaves the other alone.
        node.setWriteThreshold(0)
        #expect(node.namedWriteThresholds.map(\.name) == ["a", "b"])
        node.setWriteThreshold(3000)
        #expect(node.clearNamedWriteThreshold("b"))
        #expect(node.writeThreshold == 3000)
        #expect(node.lowestArmedThreshold == 3000)
        try node.write(at: 0, [UInt8](repeating: 1, count: 3001))
        #expect(events.recorded.count == 3)
        #expect(classicEvents(events).count == 2)
        #expect(node.lowestArmedThreshold == .max)
    }

    @Test func namedThresholdsAlsoSeeWriteZeroesAndUnmappedDiscards() throws {
        let (node, _, events) = try makeNode(size: 1 << 20, discard: .unmap)
        try node.setNamedWriteThreshold("z", .init(level: .bytes(1000)))
        try node.setNamedWriteThreshold("d", .init(level: .bytes(10000)))
        try node.writeZeroes(at: 0, length: 1500)
        try node.discard(at: 8192, length: 4096)
        #expect(crossings(events).map { "\($0.name) \($0.amountExceeded)" } == ["z 500", "d 2288"])
    }

    @Test func concurrentWritersFireEachThresholdExactlyOnce() throws {
        for round in 0..<20 {
            let (node, _, events) = try makeNode(size: 64 << 20)
            node.setWriteThreshold(1 << 20)
            try node.setNamedWriteThreshold("low", .init(level: .bytes(512 << 10)))
            try node.setNamedWriteThreshold("mid", .init(level: .percent(2)))
            try node.setNamedWriteThreshold("rearm", .init(level: .bytes(2 << 20), mode: .reArm))
            DispatchQueue.concurrentPerform(iterations: 64) { writer in
                let offset = UInt64(writer) * 65536 + UInt64(round)
                try? node.write(at: offset, [UInt8](repeating: UInt8(writer), count: 4096))
            }
            #expect(classicEvents(events).count == 1)
            #expect(crossings(events).map(\.name).sorted() == ["low", "mid", "rearm"])
            #expect(node.lowestArmedThreshold == .max)
        }
    }

    @Test func classicThresholdKeepsItsExactBehaviourWithNamedOnesAround() throws {
        let (node, _, events) = try makeNode(size: 1 << 20)
        try node.setNamedWriteThreshold("other", .init(level: .bytes(1), mode: .reArm, fireIfPast: true))
        node.setWriteThreshold(4096)
        try node.write(at: 4000, [UInt8](repeating: 1, count: 200))
        try node.write(at: 8192, [1])
        #expect(classicEvents(events) == [.writeThresholdExceeded(nodeName: "n0", amountExceeded: 104, threshold: 4096)])
        #expect(node.writeThreshold == 0)
    }
}
