import NIOPosix

/// QEMU's main loop for commands: one thread on which every monitor's commands run, one at a
/// time, so that handlers may block (open files, bind sockets) without stalling any event loop.
final class CommandRunner: Sendable {
    private let pool = NIOThreadPool(numberOfThreads: 1)

    init() {
        pool.start()
    }

    /// Runs `work` on the command thread.
    func submit(_ work: @escaping @Sendable () -> Void) {
        pool.submit { state in
            if case .active = state { work() }
        }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
