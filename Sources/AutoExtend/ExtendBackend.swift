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

/// Grows a volume. The daemon notices the new size by itself (`host_device` and file
/// volumes re-read their size when a write goes past the end), so a backend only grows the
/// storage; the controller then checks that the daemon sees the new size.
public protocol ExtendBackend: Sendable {
    /// For logs: what kind of backend and what it acts on.
    var summary: String { get }
    func extend(_ request: ExtendRequest) async throws(ExtendError)
}

/// A failed extension, with what to tell the operator.
public struct ExtendError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
