import Logging
import NIOCore
import NIOPosix

/// `highwater autoextend`: supervises every configured daemon and serves metrics.
public enum AutoExtendService {
    /// Runs until cancelled, or until the configuration proves wrong (then throws).
    public static func run(_ configuration: AutoExtendConfiguration, logger: Logger) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        do {
            try await run(configuration, group: group, pool: pool, logger: logger)
        } catch {
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }

    private static func run(
        _ configuration: AutoExtendConfiguration, group: any EventLoopGroup, pool: NIOThreadPool, logger: Logger
    ) async throws {
        let metrics = AutoExtendMetrics()
        let runner = ProcessRunner(pool: pool, timeout: configuration.commandTimeout)
        var metricsChannel: (any Channel)?
        if let address = configuration.metrics {
            let channel = try await MetricsServer.start(at: address, group: group, metrics: metrics)
            logger.info("serving metrics", metadata: ["address": .string("\(channel.localAddress.map { "\($0)" } ?? address.description)/metrics")])
            metricsChannel = channel
        }
        let supervisors = configuration.daemons.map { daemon in
            DaemonSupervisor(
                address: daemon.address,
                volumes: daemon.volumes.map { volume in
                    VolumeController(
                        configuration: volume, backend: makeBackend(volume.backend, pool: pool, runner: runner),
                        clock: ContinuousClock(), backoff: configuration.backoff, metrics: metrics.volume(volume.nodeName),
                        logger: logger)
                },
                group: group, clock: ContinuousClock(), backoff: configuration.backoff, metrics: metrics, logger: logger)
        }
        defer { metricsChannel?.close(promise: nil) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for supervisor in supervisors {
                tasks.addTask { try await supervisor.run() }
            }
            try await tasks.waitForAll()
        }
    }

    static func makeBackend(_ backend: BackendConfiguration, pool: NIOThreadPool, runner: ProcessRunner) -> any ExtendBackend {
        switch backend {
        case .loop(let device): LoopDeviceBackend(device: device, pool: pool)
        case .file(let path): FileVolumeBackend(path: path, pool: pool)
        case .lvm(let logicalVolume, let program): LVMBackend(logicalVolume: logicalVolume, program: program, runner: runner)
        case .command(let command): CommandBackend(command: command, runner: runner)
        }
    }
}
