import ArgumentParser
import AutoExtend
import Logging
import QMPClient

#if canImport(Glibc)
import Glibc
#endif

/// `highwater autoextend`: grows thin volumes when the daemon says they fill up.
struct AutoExtendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoextend",
        abstract: "Extend thin volumes by chunks when the daemon's write threshold fires (or a write finds no space).",
        discussion: """
            Give either --config FILE (JSON; see README) or one volume with --qmp, --node-name and --backend.
            Backends: loop (grow the loop device's backing file, then losetup -c), file (ftruncate the file), \
            lvm (lvextend), command (run a shell command with HIGHWATER_NODE, HIGHWATER_PATH, \
            HIGHWATER_CURRENT_SIZE, HIGHWATER_REQUESTED_SIZE, HIGHWATER_MAXIMUM_SIZE, HIGHWATER_ATTEMPT).
            """
    )

    @Option(help: "JSON configuration file (several daemons and volumes).")
    var config: String?

    @Option(help: "The daemon's QMP monitor: a socket path, unix:PATH or HOST:PORT.")
    var qmp: String?

    @Option(help: "The volume's protocol node (host_device or file; the qcow2 node's file).")
    var nodeName: String?

    @Option(help: "How to grow the volume: loop, file, lvm or command.")
    var backend: String?

    @Option(help: "loop: the loop device (default: the node's device).")
    var device: String?

    @Option(help: "file: the file to grow (default: the node's file).")
    var path: String?

    @Option(help: "lvm: the logical volume, VG/LV or a path (default: the node's device).")
    var lv: String?

    @Option(help: "lvm: the lvextend program and leading arguments, separated by spaces (default: lvextend).")
    var lvextend: String?

    @Option(help: "command: a shell command that grows the volume (see the environment above).")
    var command: String?

    @Option(help: "Bytes added per extension (suffixes K, M, G...).")
    var chunk: String = "2560M"

    @Option(help: "Percent of the last chunk used before extending (0-99); extend when less than chunk*(100-N)/100 is free.")
    var utilization: UInt64 = ExtendPolicy.defaultUtilizationPercent

    @Option(help: "Never grow past this size (default: 1.1 x a qcow2 image's virtual size, a raw image's size).")
    var maximum: String?

    @Option(help: "Serve Prometheus metrics on HOST:PORT (/metrics).")
    var metrics: String?

    @Option(help: "First retry delay after a failed extension or connection, in milliseconds (doubling).")
    var retryInitialMs: UInt64 = 100

    @Option(help: "Longest retry delay, in milliseconds.")
    var retryMaximumMs: UInt64 = 30_000

    @Option(help: "Time limit for lvextend or the command, in seconds.")
    var commandTimeoutS: UInt64 = 60

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "highwater.autoextend")
        guard let level = Logger.Level(rawValue: logLevel) else { throw fail("unknown log level '\(logLevel)'") }
        logger.logLevel = level
        let configuration: AutoExtendConfiguration
        do {
            configuration = try makeConfiguration()
        } catch {
            throw fail(error.description)
        }
        do {
            try await AutoExtendService.run(configuration, logger: logger)
        } catch let error as ConfigurationError {
            throw fail(error.description)
        } catch {
            throw fail("\(error)")
        }
    }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError("highwater autoextend: \(message)\n")
        return ExitCode(1)
    }

    private func makeConfiguration() throws(ConfigurationError) -> AutoExtendConfiguration {
        let volumeFlags = [qmp, nodeName, backend, device, path, lv, lvextend, command, maximum].contains { $0 != nil }
        var metricsAddress: MetricsAddress?
        if let metrics {
            guard let address = MetricsAddress(metrics) else { throw ConfigurationError("--metrics: expected HOST:PORT") }
            metricsAddress = address
        }
        if let config {
            guard !volumeFlags else { throw ConfigurationError("--config cannot be combined with volume flags (--qmp, --node-name, --backend, ...)") }
            var configuration = try AutoExtendConfiguration.parse(json: try Self.contents(of: config))
            if let metricsAddress { configuration.metrics = metricsAddress }
            return configuration
        }
        guard let qmp, let nodeName else { throw ConfigurationError("give --config FILE, or --qmp, --node-name and --backend") }
        guard let address = QMPAddress(qmp) else { throw ConfigurationError("--qmp: expected a socket path, unix:PATH or HOST:PORT") }
        guard let chunkSize = AutoExtendConfiguration.positiveSize(chunk) else { throw ConfigurationError("--chunk: expected a positive size") }
        guard utilization < 100 else { throw ConfigurationError("--utilization: expected a percentage from 0 to 99") }
        var maximumSize: UInt64?
        if let maximum {
            guard let size = AutoExtendConfiguration.positiveSize(maximum) else { throw ConfigurationError("--maximum: expected a positive size") }
            maximumSize = size
        }
        guard retryInitialMs > 0, retryMaximumMs >= retryInitialMs, commandTimeoutS > 0 else {
            throw ConfigurationError("--retry-initial-ms, --retry-maximum-ms and --command-timeout-s must be positive, the maximum not below the initial delay")
        }
        let backendConfiguration = try AutoExtendConfiguration.makeBackend(
            backend, device: device, path: path, logicalVolume: lv,
            program: lvextend.map { $0.split(separator: " ").map(String.init) }, command: command, at: "options")
        let volume = VolumeConfiguration(
            nodeName: nodeName, backend: backendConfiguration, chunk: chunkSize, utilizationPercent: utilization, maximum: maximumSize)
        return AutoExtendConfiguration(
            daemons: [DaemonConfiguration(address: address, volumes: [volume])], metrics: metricsAddress,
            backoff: RetryBackoff(initial: .milliseconds(retryInitialMs), maximum: .milliseconds(retryMaximumMs)),
            commandTimeout: .seconds(commandTimeoutS))
    }

    private static func contents(of path: String) throws(ConfigurationError) -> String {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ConfigurationError("\(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ConfigurationError("\(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
