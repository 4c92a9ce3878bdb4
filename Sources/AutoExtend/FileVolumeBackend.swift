import NIOPosix

/// A file volume (`driver=file` with `__io.highwater_volume=on`, or any regular file): the
/// file is grown with `ftruncate`.
public struct FileVolumeBackend: ExtendBackend {
    /// The file to grow; the node's file when nil.
    public var path: String?
    private let pool: NIOThreadPool

    public init(path: String?, pool: NIOThreadPool) {
        self.path = path
        self.pool = pool
    }

    public var summary: String { "file volume \(path ?? "(the node's file)")" }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let path = self.path ?? request.path
        try await runBlocking(pool) {
            try FileGrowth.grow(path: path, to: request.requestedSize)
        }
    }
}

/// Runs short blocking system calls off the cooperative pool.
func runBlocking(_ pool: NIOThreadPool, _ work: @escaping @Sendable () throws -> Void) async throws(ExtendError) {
    do {
        try await pool.runIfActive(work)
    } catch let error as ExtendError {
        throw error
    } catch {
        throw ExtendError("\(error)")
    }
}
