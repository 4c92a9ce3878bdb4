import Dispatch
import Testing
@testable import BlockDrivers

@Suite struct Qcow2AllocationGateTests {
    @Test func everyWaiterPassesOnceOpenAndLaterOnesAtOnce() {
        let gate = Qcow2AllocationGate()
        let passed = DispatchGroup()
        for _ in 0..<4 {
            passed.enter()
            DispatchQueue.global().async {
                gate.wait()
                passed.leave()
            }
        }
        #expect(passed.wait(timeout: .now() + .milliseconds(50)) == .timedOut, "closed until opened")
        gate.open()
        #expect(passed.wait(timeout: .now() + .seconds(5)) == .success, "all four waiters pass")
        gate.wait()  // returns at once: the gate stays open
    }
}
