/// Exponential backoff for failed extensions and failed connections: `initial`, doubling after
/// each consecutive failure, never more than `maximum`. Deterministic (no jitter): one
/// controller retries one volume, there is no herd to spread.
public struct RetryBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(30)) {
        precondition(initial > .zero && maximum >= initial)
        self.initial = initial
        self.maximum = maximum
    }

    /// The wait after `failures` consecutive failures (1 = the first failure).
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initial
        var doublings = max(0, failures - 1)
        while doublings > 0 && delay < maximum {
            delay *= 2
            doublings -= 1
        }
        return min(delay, maximum)
    }
}
