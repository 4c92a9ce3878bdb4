import NBDWire
import Testing
@testable import NBDServer

@Suite struct NBDInlineIOPolicyTests {
    let policy = NBDInlineIOPolicy.adaptive

    @Test func onlySmallPlainReadsAndWritesQualify() {
        let fast = NBDServiceTimeEstimate()
        #expect(policy.runsInline(NBDRequest(command: .read, cookie: 1, length: 65536), estimate: fast))
        #expect(policy.runsInline(NBDRequest(command: .write, cookie: 1, length: 4096), estimate: fast))
        #expect(policy.runsInline(NBDRequest(command: .cache, cookie: 1, length: 1 << 20), estimate: fast))
        #expect(!policy.runsInline(NBDRequest(command: .read, cookie: 1, length: 65537), estimate: fast))
        #expect(!policy.runsInline(NBDRequest(flags: .fua, command: .write, cookie: 1, length: 512), estimate: fast))
        for command in [NBDCommand.flush, .trim, .writeZeroes, .blockStatus] {
            #expect(!policy.runsInline(NBDRequest(command: command, cookie: 1, length: 512), estimate: fast))
        }
        #expect(!NBDInlineIOPolicy.never.runsInline(NBDRequest(command: .read, cookie: 1, length: 512), estimate: fast))
        #expect(!NBDInlineIOPolicy.never.runsInline(NBDRequest(command: .cache, cookie: 1, length: 512), estimate: fast))
    }

    @Test func oneSlowRequestMovesToThePoolAndFastOnesBringItBack() {
        var estimate = NBDServiceTimeEstimate()
        let read = NBDRequest(command: .read, cookie: 1, length: 4096)
        estimate.record(5_000_000)
        #expect(!policy.runsInline(read, estimate: estimate))
        var fastSamples = 0
        while !policy.runsInline(read, estimate: estimate) {
            estimate.record(2_000)
            fastSamples += 1
        }
        #expect(fastSamples > 10 && fastSamples < 40)
    }
}
