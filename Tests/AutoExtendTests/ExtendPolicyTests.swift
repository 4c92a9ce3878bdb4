import Testing
@testable import AutoExtend

@Suite struct ExtendPolicyTests {
    let mib: UInt64 = 1 << 20

    @Test func vdsmDefaultsExtendWhenLessThanTwoGiBAreFree() {
        let policy = ExtendPolicy(maximum: 100 << 30)
        #expect(policy.chunk == 2560 * mib)
        #expect(policy.utilizationPercent == 20)
        #expect(policy.watermark == 2048 * mib)
        #expect(policy.threshold(capacity: 10 << 30) == (10 << 30) - 2048 * mib)
        #expect(policy.nextSize(capacity: 10 << 30) == (10 << 30) + 2560 * mib)
    }

    @Test func watermarkIsTheUnusedPartOfAChunkRoundedDown() {
        #expect(ExtendPolicy(chunk: 64 * mib, utilizationPercent: 50, maximum: 1 << 30).watermark == 32 * mib)
        #expect(ExtendPolicy(chunk: 64 * mib, utilizationPercent: 0, maximum: 1 << 30).watermark == 64 * mib)
        #expect(ExtendPolicy(chunk: 64 * mib, utilizationPercent: 99, maximum: 1 << 30).watermark == 64 * mib / 100)
        // 999 * 30 / 100 = 299.7
        #expect(ExtendPolicy(chunk: 999, utilizationPercent: 70, maximum: 1 << 30).watermark == 299)
        // No overflow for huge chunks: (2^64 - 1) * 50 / 100.
        #expect(ExtendPolicy(chunk: .max, utilizationPercent: 50, maximum: .max).watermark == UInt64.max / 2)
    }

    @Test func aVolumeSmallerThanItsWatermarkExtendsAtTheFirstWrite() {
        let policy = ExtendPolicy(maximum: 100 << 30)
        #expect(policy.threshold(capacity: 1 << 30) == 1)
        #expect(policy.threshold(capacity: 2048 * mib) == 1)
        #expect(policy.threshold(capacity: 2048 * mib + 1) == 1)
        #expect(policy.threshold(capacity: 2048 * mib + 2) == 2)
    }

    @Test func nextSizeIsRoundedUpToMiBAndCappedAtTheMaximum() {
        let policy = ExtendPolicy(chunk: 64 * mib, utilizationPercent: 50, maximum: 200 * mib)
        #expect(policy.nextSize(capacity: 64 * mib) == 128 * mib)
        #expect(policy.nextSize(capacity: 64 * mib + 1) == 129 * mib)
        #expect(policy.nextSize(capacity: 150 * mib) == 200 * mib)
        #expect(policy.nextSize(capacity: .max - 1) == 200 * mib)
        #expect(!policy.isAtMaximum(capacity: 200 * mib - 1))
        #expect(policy.isAtMaximum(capacity: 200 * mib))
        #expect(policy.isAtMaximum(capacity: 300 * mib))
    }

    @Test func qcow2MaximumAddsTenPercentRoundedUpToMiB() {
        #expect(ExtendPolicy.qcow2Maximum(virtualSize: 2 << 30) == 2253 * mib)  // 2252.8 MiB
        #expect(ExtendPolicy.qcow2Maximum(virtualSize: 10 * mib) == 11 * mib)
        #expect(ExtendPolicy.qcow2Maximum(virtualSize: 11) == mib)
    }
}
