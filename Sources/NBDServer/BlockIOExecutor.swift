/// Runs blocking block I/O somewhere. The composition root plugs a thread pool (NIOPosix's
/// `NIOThreadPool`); tests use `InlineBlockIOExecutor`.
///
/// The NBD connection handler submits each request's I/O as one work item and copes with
/// the work completing on any thread, including synchronously inside `execute` (then the
/// reply is written without a thread hop and flushed with the rest of the read burst).
public protocol BlockIOExecutor: Sendable {
    func execute(_ work: @escaping @Sendable () -> Void)
}

/// Runs the work immediately on the calling thread (the event loop): no hand-off cost, but
/// a slow disk stalls every connection of that loop.
public struct InlineBlockIOExecutor: BlockIOExecutor {
    public init() {}

    @inlinable
    public func execute(_ work: @escaping @Sendable () -> Void) {
        work()
    }
}
