/// One extension to carry out.
public struct ExtendRequest: Sendable, Equatable {
    /// The daemon's node for the volume.
    public var nodeName: String
    /// The node's host file or device (its `file` in `query-named-block-nodes`).
    public var path: String
    public var currentSize: UInt64
    /// The size to grow to (a backend may round it up, never down).
    public var requestedSize: UInt64
    public var maximumSize: UInt64
    /// 1 for the first try; counts consecutive failures.
    public var attempt: Int

    public init(nodeName: String, path: String, currentSize: UInt64, requestedSize: UInt64, maximumSize: UInt64, attempt: Int) {
        self.nodeName = nodeName
        self.path = path
        self.currentSize = currentSize
        self.requestedSize = requestedSize
        self.maximumSize = maximumSize
        self.attempt = attempt
    }
}
