/// How full one node is and what watches it, from one refresh.
public struct NodeUse: Sendable, Equatable {
    /// A named threshold (`__io.highwater_query-write-thresholds`).
    public struct NamedThreshold: Sendable, Equatable {
        public var name: String
        public var value: UInt64
        public var percent: Int?
        public var mode: String
        public var isArmed: Bool
        public var fireCount: UInt64

        public init(name: String, value: UInt64, percent: Int?, mode: String, isArmed: Bool, fireCount: UInt64) {
            self.name = name
            self.value = value
            self.percent = percent
            self.mode = mode
            self.isArmed = isArmed
            self.fireCount = fireCount
        }
    }

    public var nodeName: String
    public var size: UInt64
    /// `wr_highest_offset` of `query-blockstats`.
    public var highestOffset: UInt64
    /// The classic threshold, 0 when disarmed.
    public var writeThreshold: UInt64
    /// Named thresholds; nil when the daemon has none (qemu-storage-daemon).
    public var thresholds: [NamedThreshold]?

    public init(nodeName: String, size: UInt64, highestOffset: UInt64, writeThreshold: UInt64, thresholds: [NamedThreshold]?) {
        self.nodeName = nodeName
        self.size = size
        self.highestOffset = highestOffset
        self.writeThreshold = writeThreshold
        self.thresholds = thresholds
    }
}
