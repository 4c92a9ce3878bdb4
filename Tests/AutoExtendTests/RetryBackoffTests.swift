import Testing
@testable import AutoExtend

@Suite struct RetryBackoffTests {
    @Test func doublesFromTheInitialDelayUpToTheMaximum() {
        let backoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(1))
        let delays = (1...7).map { backoff.delay(afterFailures: $0) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1), .seconds(1)])
        #expect(backoff.delay(afterFailures: 10_000) == .seconds(1))
    }

    @Test func defaultsAreATenthOfASecondToHalfAMinute() {
        let backoff = RetryBackoff()
        #expect(backoff.delay(afterFailures: 1) == .milliseconds(100))
        #expect(backoff.delay(afterFailures: 20) == .seconds(30))
    }
}
