import AutoExtend
import Logging
import ServiceLifecycle

/// The AutoExtend controller as a service next to the daemon: it connects once the daemon
/// is ready (its monitor listens), manages the volume until graceful shutdown, and is shut
/// down before the daemon.
struct VolumeControllerService: Service {
    let configuration: AutoExtendConfiguration
    /// Yields once the daemon has started.
    let daemonReady: AsyncStream<Void>
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown { [configuration, daemonReady, logger] in
            var started = false
            for await _ in daemonReady {
                started = true
                break
            }
            // Cancelled (the daemon did not start, or a shutdown) before the daemon was ready.
            guard started, !Task.isCancelled else { return }
            try await AutoExtendService.run(configuration, logger: logger)
        }
    }
}
