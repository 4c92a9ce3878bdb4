import NBDServer
import NIOPosix

/// Runs NBD block I/O on a pool of threads (QEMU's `aio=threads`): synchronous drivers may
/// block without stalling the event loops.
final class ThreadPoolBlockIOExecutor: BlockIOExecutor {
    private let pool: NIOThreadPool

    init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        pool.submit { state in
            if case .active = state { work() }
        }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
