import NIOCore
import Testing
@testable import NBDServer

@Suite struct NBDCompletionQueueTests {
    @Test func onlyTheFirstCompletionOfABatchSchedulesADrain() {
        let queue = NBDCompletionQueue()
        #expect(queue.append(NBDCompletion(reply: ByteBuffer(bytes: [1]), serviceTime: nil)))
        #expect(!queue.append(NBDCompletion(reply: ByteBuffer(bytes: [2]), serviceTime: 5)))
        var drained: [NBDCompletion] = []
        queue.takeAll(into: &drained)
        #expect(drained.map(\.reply) == [ByteBuffer(bytes: [1]), ByteBuffer(bytes: [2])])
        #expect(drained.map(\.serviceTime) == [nil, 5])
        drained.removeAll(keepingCapacity: true)
        #expect(queue.append(NBDCompletion(reply: ByteBuffer(bytes: [3]), serviceTime: nil)), "a new batch starts after a drain")
    }
}
