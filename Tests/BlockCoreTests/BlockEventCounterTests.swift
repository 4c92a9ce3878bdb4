import Testing
@testable import BlockCore

@Suite struct BlockEventCounterTests {
    @Test func countsEveryEventAndForwardsIt() throws {
        let recorder = EventRecorder()
        let counter = BlockEventCounter(forwardingTo: recorder)
        let node = try BlockNode(options: BlockNodeOptions(nodeName: "n0"), driver: MemoryDriver(size: 1 << 20), eventSink: counter)
        #expect(counter.count == 0)
        node.setWriteThreshold(4096)
        try node.write(at: 0, [UInt8](repeating: 1, count: 4096))
        #expect(counter.count == 0, "a write ending at the threshold does not cross it")
        try node.write(at: 4096, [1])
        node.setWriteThreshold(8192)
        try node.write(at: 8192, [1])
        #expect(counter.count == 2)
        #expect(recorder.recorded == [
            .writeThresholdExceeded(nodeName: "n0", amountExceeded: 1, threshold: 4096),
            .writeThresholdExceeded(nodeName: "n0", amountExceeded: 1, threshold: 8192),
        ])
    }
}
