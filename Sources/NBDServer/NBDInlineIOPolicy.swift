import NBDWire

/// Decides which requests a connection runs directly on its event loop instead of handing
/// them to the `BlockIOExecutor`.
///
/// The hand-off to a pool thread and back costs two thread wake-ups, which is most of the
/// cost of a 4 KiB read served from the page cache (measured on two cores: ~100k IOPS
/// inline against ~25k through a pool). But blocking I/O on an event loop stalls every
/// connection of that loop, so only requests that are small and *recently observed to be
/// fast* run inline:
///
/// * READ and WRITE of at most `maximumLength` bytes without FUA (CACHE, a no-op, always);
///   FLUSH, FUA, TRIM, WRITE_ZEROES and BLOCK_STATUS may sync or scan: always the executor;
/// * and only while the connection's moving average of such requests' service time is
///   below `latencyLimitNanoseconds`. Every such request, wherever it ran, feeds the
///   average (unless it fired a block event, see `NBDServiceTimer`): a cold cache or a
///   slow device (cache.direct=on) pushes the connection to the pool after one slow
///   request, and it returns inline once the requests it sends to the pool complete fast
///   again.
public struct NBDInlineIOPolicy: Sendable, Hashable {
    public var maximumLength: UInt32
    public var latencyLimitNanoseconds: UInt64

    public init(maximumLength: UInt32, latencyLimitNanoseconds: UInt64) {
        self.maximumLength = maximumLength
        self.latencyLimitNanoseconds = latencyLimitNanoseconds
    }

    /// Small requests inline while they take less than 50 µs (page-cache speed; a device
    /// read takes longer).
    public static let adaptive = NBDInlineIOPolicy(maximumLength: 64 * 1024, latencyLimitNanoseconds: 50_000)
    /// Every request through the executor.
    public static let never = NBDInlineIOPolicy(maximumLength: 0, latencyLimitNanoseconds: 0)

    /// Whether `request`'s service time is a sample of "small request" speed.
    @inline(__always)
    func isSmall(_ request: NBDRequest) -> Bool {
        (request.command == .read || request.command == .write)
            && request.length <= maximumLength && !request.flags.contains(.fua)
    }

    @inline(__always)
    func runsInline(_ request: NBDRequest, estimate: NBDServiceTimeEstimate) -> Bool {
        if request.command == .cache { return latencyLimitNanoseconds > 0 }
        return isSmall(request) && estimate.nanoseconds < latencyLimitNanoseconds
    }
}

/// Exponential moving average (weight 1/8) of the service time of small requests on one
/// connection.
struct NBDServiceTimeEstimate {
    private(set) var nanoseconds: UInt64 = 0

    mutating func record(_ sample: UInt64) {
        nanoseconds = nanoseconds - nanoseconds / 8 + sample / 8
    }
}
