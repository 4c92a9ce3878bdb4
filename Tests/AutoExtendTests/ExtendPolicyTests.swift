import Testing
@testable import AutoExtend

@Suite struct ExtendPolicyTests {
    let mib: UInt64 = 1 << 20

    @Test func vdsmDefaultsExtendWhenLessThanTwoGiBAreFree() {
        let policy = ExtendPolicy(maximum: 100 << 30)
        #expect(policy.chunk == 2560 * mib)
        #expect(policy.watermark == 2048 * mib)
        #expect(policy.threshold(capacity: 10 << 30) == (10 << 30) - 2048 * mib)
        #expect(policy.nextSize(capacity: 10 << 30) == (10 << 30) + 2560 * mib)
    }
}
