/// Grows a volume. The daemon notices the new size by itself (`host_device` and file
/// volumes re-read their size when a write goes past the end), so a backend only grows the
/// storage; the controller then checks that the daemon sees the new size.
public protocol ExtendBackend: Sendable {
    /// For logs: what kind of backend and what it acts on.
    var summary: String { get }
    func extend(_ request: ExtendRequest) async throws(ExtendError)
}

