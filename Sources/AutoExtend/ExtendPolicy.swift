/// How one thin volume grows: by chunks, early enough that writes never reach its end.
///
/// The arithmetic is vdsm's (oVirt; `lib/vdsm/virt/vmdevices/storage.py`, `Drive.watermarkLimit`
/// and `Drive.getNextVolumeSize`, and `lib/vdsm/virt/thinp.py`, `VolumeMonitor._set_threshold`):
/// - the *watermark* is the free space below which a volume is extended:
///   `chunk * (100 - utilization) / 100` (vdsm: `VOLWM_FREE_PCT * volExtensionChunk // 100` with
///   `VOLWM_FREE_PCT = 100 - volume_utilization_percent`);
/// - the write threshold is `max(1, capacity - watermark)` (1 is the smallest armed value; a
///   volume smaller than its watermark is extended at the first write);
/// - the next size is `min(capacity + chunk rounded up to MiB, maximum)`.
/// vdsm's defaults are a 2560 MiB chunk and 20 % utilization (extend when less than 2 GiB is
/// free). A volume whose maximum is smaller than the chunk simply reaches it in one step; give
/// small volumes a small chunk to keep them thin.
public struct ExtendPolicy: Sendable, Hashable {
    /// Bytes added per extension.
    public var chunk: UInt64
    /// Percent of the last chunk that may be used before extending (0...99).
    public var utilizationPercent: UInt64
    /// The size the volume never grows past.
    public var maximum: UInt64

    public static let defaultChunk: UInt64 = 2560 << 20
    public static let defaultUtilizationPercent: UInt64 = 20

    public init(chunk: UInt64 = defaultChunk, utilizationPercent: UInt64 = defaultUtilizationPercent, maximum: UInt64) {
        precondition(chunk > 0 && utilizationPercent < 100)
        self.chunk = chunk
        self.utilizationPercent = utilizationPercent
        self.maximum = maximum
    }

    /// Free bytes below which the volume is extended.
    public var watermark: UInt64 {
        // chunk * free / 100 without overflow: (100q + r) * free / 100 = q * free + r * free / 100.
        let free = 100 - utilizationPercent
        let (quotient, remainder) = chunk.quotientAndRemainder(dividingBy: 100)
        return quotient * free + remainder * free / 100
    }

    /// The write threshold to arm for a volume of `capacity` bytes.
    public func threshold(capacity: UInt64) -> UInt64 {
        capacity > watermark ? max(1, capacity - watermark) : 1
    }

    /// Whether the volume cannot grow any more.
    public func isAtMaximum(capacity: UInt64) -> Bool {
        capacity >= maximum
    }

    /// The size to ask for when extending a volume of `capacity` bytes.
    public func nextSize(capacity: UInt64) -> UInt64 {
        let (sum, overflow) = capacity.addingReportingOverflow(chunk)
        guard !overflow else { return maximum }
        return min(Self.roundUpToMiB(sum), maximum)
    }

    /// The default maximum for a volume holding a qcow2 image of `virtualSize` bytes: 10 %
    /// more for the image's metadata (vdsm's `VOLWM_COW_OVERHEAD = 1.1`, rounded up to MiB).
    public static func qcow2Maximum(virtualSize: UInt64) -> UInt64 {
        roundUpToMiB(virtualSize + virtualSize / 10 + (virtualSize % 10 == 0 ? 0 : 1))
    }

    static func roundUpToMiB(_ value: UInt64) -> UInt64 {
        let mask: UInt64 = (1 << 20) - 1
        return value > UInt64.max - mask ? value : (value + mask) & ~mask
    }
}
