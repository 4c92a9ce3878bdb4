import Dispatch
import Synchronization
import Testing
@testable import BlockCore

@Suite struct BlockNodeThresholdTests {
    @Test func firesOnceWhenAWriteEndsPastTheThresholdAndDisarms() throws {
        let (node, _, events) = try makeNode(size: 1 << 20)
        node.setWriteThreshold(4096)
        try node.write(at: 0, [UInt8](repeating: 1, count: 4096))
        #expect(events.recorded.isEmpty)
        try node.write(at: 4000, [UInt8](repeating: 1, count: 200))
        #expect(events.recorded == [.writeThresholdExceeded(nodeName: "n0", amountExceeded: 104, threshold: 4096)])
        #expect(node.writeThreshold == 0)
        try node.write(at: 8192, [1])
        #expect(events.recorded.count == 1)
    }

    @Test func writeZeroesAndUnmappedDiscardFire() throws {
        let (node, _, events) = try makeNode(size: 1 << 20, discard: .unmap)
        node.setWriteThreshold(1000)
        try node.writeZeroes(at: 0, length: 1500)
        node.setWriteThreshold(2000)
        try node.discard(at: 2048, length: 4096)
        #expect(events.recorded == [
            .writeThresholdExceeded(nodeName: "n0", amountExceeded: 500, threshold: 1000),
            .writeThresholdExceeded(nodeName: "n0", amountExceeded: 4144, threshold: 2000),
        ])
    }

    @Test func ignoredDiscardReadsFlushesAndTruncatesNeverFire() throws {
        let (node, _, events) = try makeNode(size: 1 << 20, discard: .ignore)
        node.setWriteThreshold(1)
        try node.discard(at: 0, length: 65536)
        _ = try node.read(at: 0, count: 65536)
        try node.flush()
        _ = try node.blockStatus(at: 0, length: 65536)
        try node.truncate(to: 2 << 20)
        #expect(events.recorded.isEmpty)
        #expect(node.writeThreshold == 1)
    }

    @Test func unalignedRequestsAreCheckedWithTheirPaddedEnd() throws {
        let (node, _, events) = try makeNode(size: 1 << 20, alignment: 512)
        node.setWriteThreshold(1000)
        try node.write(at: 990, [1, 2])
        #expect(events.recorded == [.writeThresholdExceeded(nodeName: "n0", amountExceeded: 24, threshold: 1000)])
    }

    @Test func failedRangeChecksDoNotFire() throws {
        let (node, _, events) = try makeNode(size: 4096)
        node.setWriteThreshold(100)
        #expect(throws: BlockError.noSpace) { try node.write(at: 4096, [1]) }
        #expect(events.recorded.isEmpty)
    }

    @Test func concurrentWritersFireExactlyOnce() throws {
        for round in 0..<20 {
            let (node, _, events) = try makeNode(size: 64 << 20)
            let threshold: UInt64 = 1 << 20
            node.setWriteThreshold(threshold)
            let ends = Mutex<Set<UInt64>>([])
            DispatchQueue.concurrentPerform(iterations: 64) { writer in
                let offset = UInt64(writer) * 65536 + UInt64(round)
                let data = [UInt8](repeating: UInt8(writer), count: 4096)
                try? node.write(at: offset, data)
                ends.withLock { _ = $0.insert(offset + 4096) }
            }
            let recorded = events.recorded
            #expect(recorded.count == 1)
            guard case .writeThresholdExceeded(let name, let amount, let armed)? = recorded.first else { continue }
            #expect(name == "n0" && armed == threshold)
            // The amount belongs to one of the writes that crossed the threshold.
            #expect(ends.withLock { $0 }.filter { $0 > threshold }.contains(threshold + amount))
            #expect(node.writeThreshold == 0)
        }
    }

    @Test func rearmingAfterFiringFiresAgain() throws {
        let (node, _, events) = try makeNode(size: 1 << 20)
        node.setWriteThreshold(10)
        try node.write(at: 0, [UInt8](repeating: 1, count: 20))
        node.setWriteThreshold(30)
        try node.write(at: 0, [UInt8](repeating: 1, count: 20))
        try node.write(at: 0, [UInt8](repeating: 1, count: 40))
        #expect(events.recorded.count == 2)
        node.setWriteThreshold(100)
        node.setWriteThreshold(0)
        try node.write(at: 0, [UInt8](repeating: 1, count: 400))
        #expect(events.recorded.count == 2)
    }
}
