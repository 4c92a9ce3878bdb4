import NIOCore
import Testing
@testable import NBDServer

@Suite struct NBDCompletionQueueTests {
    @Test func onlyTheFirstCompletionOfABatchSchedulesADrain() {
        let queue = NBDCompletionQueue()
        #expect(queue.append(ByteBuffer(bytes: [1])))
        #expect(!queue.append(ByteBuffer(bytes: [2])))
        var drained: [ByteBuffer] = []
        queue.takeAll(into: &drained)
        #expect(drained == [ByteBuffer(bytes: [1]), ByteBuffer(bytes: [2])])
        drained.removeAll(keepingCapacity: true)
        #expect(queue.append(ByteBuffer(bytes: [3])), "a new batch starts after a drain")
    }
}
