import JSON
import QAPI
import QMPClient

/// What `highwater autoextend` manages: daemons, their volumes, and how to grow them.
///
/// Read from a JSON file (see README, "highwater autoextend"), or built from command line
/// flags for a single volume. Sizes are byte counts or strings with a binary suffix ("64M").
public struct AutoExtendConfiguration: Sendable, Equatable {
    public var daemons: [DaemonConfiguration]
    /// `HOST:PORT` to serve Prometheus metrics on, if any.
    public var metrics: MetricsAddress?
    /// Backoff for failed extensions and for reconnecting.
    public var backoff: RetryBackoff
    /// How long an external command (lvextend, a command backend) may run.
    public var commandTimeout: Duration

    public init(daemons: [DaemonConfiguration], metrics: MetricsAddress? = nil, backoff: RetryBackoff = RetryBackoff(), commandTimeout: Duration = .seconds(60)) {
        self.daemons = daemons
        self.metrics = metrics
        self.backoff = backoff
        self.commandTimeout = commandTimeout
    }
}

extension AutoExtendConfiguration {
    /// Parses the JSON configuration file's text.
    public static func parse(json text: String) throws(ConfigurationError) -> AutoExtendConfiguration {
        var parser = JSONStreamParser()
        parser.append(bytes: Array(text.utf8) + [0x20])
        guard case .value(let value)? = parser.next() else {
            throw ConfigurationError("the configuration is not a JSON object")
        }
        if parser.next() != nil { throw ConfigurationError("the configuration has more than one JSON value") }
        var reader = try ObjectReader(value, at: "configuration")
        let daemonValues = try reader.take("daemons", as: "an array of daemons") { $0.arrayValue } ?? []
        let metrics = try reader.take("metrics", as: "\"HOST:PORT\"") { $0.stringValue.flatMap(MetricsAddress.init) }
        let initial = try reader.take("retry-initial-ms", as: "a positive number of milliseconds") { $0.positiveValue } ?? 100
        let maximum = try reader.take("retry-maximum-ms", as: "a positive number of milliseconds") { $0.positiveValue } ?? 30_000
        let timeout = try reader.take("command-timeout-s", as: "a positive number of seconds") { $0.positiveValue } ?? 60
        try reader.finish()
        guard !daemonValues.isEmpty else { throw ConfigurationError("configuration: 'daemons' must list at least one daemon") }
        guard maximum >= initial else { throw ConfigurationError("configuration: 'retry-maximum-ms' is below 'retry-initial-ms'") }

        var daemons: [DaemonConfiguration] = []
        var seen: Set<String> = []
        for (index, daemonValue) in daemonValues.enumerated() {
            let place = "daemons[\(index)]"
            var daemonReader = try ObjectReader(daemonValue, at: place)
            guard let address = try daemonReader.take("qmp", as: "a socket path, unix:PATH or HOST:PORT", { $0.stringValue.flatMap(QMPAddress.init) }) else {
                throw ConfigurationError("\(place): 'qmp' (the daemon's QMP socket) is required")
            }
            let volumeValues = try daemonReader.take("volumes", as: "an array of volumes") { $0.arrayValue } ?? []
            try daemonReader.finish()
            guard !volumeValues.isEmpty else { throw ConfigurationError("\(place): 'volumes' must list at least one volume") }
            var volumes: [VolumeConfiguration] = []
            for (volumeIndex, volumeValue) in volumeValues.enumerated() {
                let volume = try parseVolume(volumeValue, at: "\(place).volumes[\(volumeIndex)]")
                guard seen.insert("\(address) \(volume.nodeName)").inserted else {
                    throw ConfigurationError("\(place).volumes[\(volumeIndex)]: node '\(volume.nodeName)' is listed twice for \(address)")
                }
                volumes.append(volume)
            }
            daemons.append(DaemonConfiguration(address: address, volumes: volumes))
        }
        return AutoExtendConfiguration(
            daemons: daemons, metrics: metrics,
            backoff: RetryBackoff(initial: .milliseconds(initial), maximum: .milliseconds(maximum)),
            commandTimeout: .seconds(timeout))
    }

    private static func parseVolume(_ value: JSONValue, at place: String) throws(ConfigurationError) -> VolumeConfiguration {
        var reader = try ObjectReader(value, at: place)
        guard let nodeName = try reader.take("node-name", as: "a node name", { $0.stringValue.flatMap { $0.isEmpty ? nil : $0 } }) else {
            throw ConfigurationError("\(place): 'node-name' (the volume's protocol node) is required")
        }
        let backendName = try reader.take("backend", as: "one of \(BackendConfiguration.names.joined(separator: ", "))") {
            $0.stringValue.flatMap { BackendConfiguration.names.contains($0) ? $0 : nil }
        }
        let device = try reader.take("device", as: "a device path") { $0.stringValue }
        let path = try reader.take("path", as: "a file path") { $0.stringValue }
        let logicalVolume = try reader.take("lv", as: "a logical volume (VG/LV or a path)") { $0.stringValue }
        let program = try reader.take("lvextend", as: "an array of strings (program and arguments)") { value -> [String]? in
            guard let words = value.arrayValue?.compactMap(\.stringValue), !words.isEmpty, words.count == value.arrayValue?.count else { return nil }
            return words
        }
        let command = try reader.take("command", as: "a shell command") { $0.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
        let chunk = try reader.take("chunk", as: "a positive size", parseSize)
        let utilization = try reader.take("utilization", as: "a percentage from 0 to 99") { $0.nonNegativeValue.flatMap { $0 < 100 ? $0 : nil } }
        let maximum = try reader.take("maximum", as: "a positive size", parseSize)
        try reader.finish()

        let backend = try makeBackend(
            backendName, device: device, path: path, logicalVolume: logicalVolume, program: program, command: command, at: place)
        return VolumeConfiguration(
            nodeName: nodeName, backend: backend, chunk: chunk ?? ExtendPolicy.defaultChunk,
            utilizationPercent: utilization ?? ExtendPolicy.defaultUtilizationPercent, maximum: maximum)
    }

    /// Checks that the options given fit the backend (shared with the command line flags).
    public static func makeBackend(
        _ name: String?, device: String?, path: String?, logicalVolume: String?, program: [String]?, command: String?, at place: String
    ) throws(ConfigurationError) -> BackendConfiguration {
        let given = [("device", device != nil), ("path", path != nil), ("lv", logicalVolume != nil), ("lvextend", program != nil), ("command", command != nil)]
            .filter(\.1).map(\.0)
        func only(_ allowed: Set<String>) throws(ConfigurationError) {
            if let extra = given.first(where: { !allowed.contains($0) }) {
                throw ConfigurationError("\(place): '\(extra)' does not apply to the \(name ?? "") backend")
            }
        }
        switch name {
        case "loop":
            try only(["device"])
            return .loop(device: device)
        case "file":
            try only(["path"])
            return .file(path: path)
        case "lvm":
            try only(["lv", "lvextend"])
            return .lvm(logicalVolume: logicalVolume, program: program ?? ["lvextend"])
        case "command":
            try only(["command"])
            guard let command else { throw ConfigurationError("\(place): the command backend needs 'command'") }
            return .command(command)
        default:
            throw ConfigurationError("\(place): 'backend' is required: one of \(BackendConfiguration.names.joined(separator: ", "))")
        }
    }

    /// A positive size: a byte count, or a string such as "64M" or "2.5G".
    static func parseSize(_ value: JSONValue) -> UInt64? {
        value.positiveValue ?? value.stringValue.flatMap(positiveSize)
    }

    /// A size as `size(_:)` reads it, nil unless it is positive (chunks, maximums, disks).
    public static func positiveSize(_ text: String) -> UInt64? {
        size(text).flatMap { $0 > 0 ? $0 : nil }
    }

    /// A size as QEMU writes them: bytes, or with a binary suffix (K, M, G, T, P, E).
    public static func size(_ text: String) -> UInt64? {
        SizeSyntax.parse(text)
    }
}

/// Takes members out of a JSON object one by one, so that any left over (a typo) is an error.
private struct ObjectReader {
    private var object: JSONObject
    private let place: String

    init(_ value: JSONValue, at place: String) throws(ConfigurationError) {
        guard let object = value.objectValue else { throw ConfigurationError("\(place): expected an object") }
        self.object = object
        self.place = place
    }

    mutating func take<T>(_ key: String, as expected: String, _ convert: (JSONValue) -> T?) throws(ConfigurationError) -> T? {
        guard let value = object[key] else { return nil }
        object[key] = nil
        guard let converted = convert(value) else {
            throw ConfigurationError("\(place).\(key): expected \(expected)")
        }
        return converted
    }

    func finish() throws(ConfigurationError) {
        if let key = object.keys.first { throw ConfigurationError("\(place): unknown member '\(key)'") }
    }
}

extension JSONValue {
    /// A number a configuration file gives as a count or size: negative ones are refused.
    fileprivate var nonNegativeValue: UInt64? {
        switch self {
        case .int(let value) where value >= 0: UInt64(value)
        case .uint(let value): value
        default: nil
        }
    }

    /// A number a configuration file gives as a size or a delay: zero is refused too.
    fileprivate var positiveValue: UInt64? {
        nonNegativeValue.flatMap { $0 > 0 ? $0 : nil }
    }
}
