import JSON

/// The client side of one QMP connection for `highwater watch`, as a pure state machine: it
/// is fed the monitor's messages and timer ticks, and answers with messages to send and
/// records to print.
///
/// After the greeting it negotiates capabilities, lists the commands (to learn whether the
/// daemon has HighWater's named thresholds), then refreshes the use of every node: once at
/// the start, after every event, and on each tick. A refresh is `query-named-block-nodes`
/// (sizes, classic thresholds), `query-blockstats` with `query-nodes` (highest written
/// offsets) and, where available, `__io.highwater_query-write-thresholds`. Only nodes whose
/// use changed are reported. Events that arrive during a refresh ask for one more.
public struct WatchSession: Sendable {
    public enum Input: Sendable, Equatable {
        case message(JSONStreamParser.Item)
        /// The periodic refresh is due.
        case tick
    }

    public enum Action: Sendable, Equatable {
        case send(JSONValue)
        case record(WatchRecord)
    }

    /// The replies one refresh collects.
    private struct Refresh {
        var nodes: [JSONValue]?
        var statistics: [JSONValue]?
        var thresholds: [JSONValue]?
        var outstanding: Int
    }

    private enum State {
        case awaitingGreeting
        case negotiating(version: String, package: String)
        case listingCommands
        case running
    }

    static let namedThresholdQuery = "__io.highwater_query-write-thresholds"

    private let daemon: String
    private var state = State.awaitingGreeting
    private var hasNamedThresholds = false
    private var refresh: Refresh?
    private var refreshAgain = false
    private var reported: [String: NodeUse] = [:]
    private var reportedOrder: [String] = []

    public init(daemon: String) {
        self.daemon = daemon
    }

    public mutating func handle(_ input: Input, now: WatchTimestamp) -> [Action] {
        switch input {
        case .tick:
            guard case .running = state else { return [] }
            return startRefresh()
        case .message(.error):
            return []
        case .message(.value(let message)):
            return handle(message, now: now)
        }
    }

    private mutating func handle(_ message: JSONValue, now: WatchTimestamp) -> [Action] {
        if let name = message["event"]?.stringValue {
            let timestamp = Self.timestamp(message["timestamp"]) ?? now
            var actions = [Action.record(WatchRecord(timestamp: timestamp, daemon: daemon,
                                                     kind: .event(name: name, data: message["data"]?.objectValue ?? [:])))]
            if case .running = state { actions += startRefresh() }
            return actions
        }
        switch state {
        case .awaitingGreeting:
            guard let greeting = message["QMP"] else { return [] }
            let version = greeting["version"]?["qemu"]
            let numbers = ["major", "minor", "micro"].map { version?[$0].flatMap(Self.integer).map(String.init) ?? "?" }
            state = .negotiating(version: numbers.joined(separator: "."), package: greeting["version"]?["package"]?.stringValue ?? "")
            return [.send(["execute": "qmp_capabilities"])]
        case .negotiating(let version, let package):
            guard message["return"] != nil else { return [] }
            state = .listingCommands
            return [
                .record(WatchRecord(timestamp: now, daemon: daemon, kind: .connected(version: version, package: package))),
                .send(["execute": "query-commands"]),
            ]
        case .listingCommands:
            let names = message["return"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            hasNamedThresholds = names.contains(Self.namedThresholdQuery)
            state = .running
            return startRefresh()
        case .running:
            return refreshReply(message, now: now)
        }
    }

    // MARK: Refresh

    private mutating func startRefresh() -> [Action] {
        guard refresh == nil else {
            refreshAgain = true
            return []
        }
        var commands: [JSONValue] = [
            ["execute": "query-named-block-nodes", "arguments": ["flat": true], "id": "nodes"],
            ["execute": "query-blockstats", "arguments": ["query-nodes": true], "id": "statistics"],
        ]
        if hasNamedThresholds { commands.append(["execute": .string(Self.namedThresholdQuery), "id": "thresholds"]) }
        refresh = Refresh(outstanding: commands.count)
        return commands.map(Action.send)
    }

    private mutating func refreshReply(_ message: JSONValue, now: WatchTimestamp) -> [Action] {
        guard var current = refresh, let id = message["id"]?.stringValue else { return [] }
        // An error reply leaves its part empty: what the others say is still worth showing.
        let list = message["return"]?.arrayValue ?? []
        switch id {
        case "nodes": current.nodes = list
        case "statistics": current.statistics = list
        case "thresholds": current.thresholds = list
        default: return []
        }
        current.outstanding -= 1
        guard current.outstanding == 0 else {
            refresh = current
            return []
        }
        refresh = nil
        var actions = report(Self.uses(current), now: now)
        if refreshAgain {
            refreshAgain = false
            actions += startRefresh()
        }
        return actions
    }

    private mutating func report(_ uses: [NodeUse], now: WatchTimestamp) -> [Action] {
        var actions: [Action] = []
        let present = Set(uses.map(\.nodeName))
        for name in reportedOrder where !present.contains(name) {
            reported[name] = nil
            actions.append(.record(WatchRecord(timestamp: now, daemon: daemon, kind: .nodeRemoved(name))))
        }
        reportedOrder = uses.map(\.nodeName)
        for use in uses where reported[use.nodeName] != use {
            reported[use.nodeName] = use
            actions.append(.record(WatchRecord(timestamp: now, daemon: daemon, kind: .use(use))))
        }
        return actions
    }

    /// Joins the three replies by node name, oldest node first.
    private static func uses(_ refresh: Refresh) -> [NodeUse] {
        var highestOffsets: [String: UInt64] = [:]
        func collect(_ entry: JSONValue) {
            if let name = entry["node-name"]?.stringValue, let offset = entry["stats"]?["wr_highest_offset"].flatMap(integer) {
                highestOffsets[name] = offset
            }
            if let parent = entry["parent"] { collect(parent) }
        }
        refresh.statistics?.forEach(collect)
        var named: [String: (size: UInt64?, thresholds: [NodeUse.NamedThreshold])] = [:]
        for node in refresh.thresholds ?? [] {
            guard let name = node["node-name"]?.stringValue else { continue }
            named[name] = (node["size"].flatMap(integer), (node["thresholds"]?.arrayValue ?? []).compactMap(namedThreshold))
        }
        return (refresh.nodes ?? []).reversed().compactMap { node -> NodeUse? in
            guard let name = node["node-name"]?.stringValue else { return nil }
            return NodeUse(
                nodeName: name,
                size: named[name]?.size ?? node["image"]?["virtual-size"].flatMap(integer) ?? 0,
                highestOffset: highestOffsets[name] ?? 0,
                writeThreshold: node["write_threshold"].flatMap(integer) ?? 0,
                thresholds: refresh.thresholds == nil ? nil : named[name]?.thresholds ?? [])
        }
    }

    private static func namedThreshold(_ entry: JSONValue) -> NodeUse.NamedThreshold? {
        guard let name = entry["name"]?.stringValue, let value = entry["write-threshold"].flatMap(integer) else { return nil }
        return NodeUse.NamedThreshold(
            name: name, value: value, percent: entry["percent"].flatMap(integer).map(Int.init),
            mode: entry["mode"]?.stringValue ?? "one-shot", isArmed: entry["armed"]?.boolValue ?? false,
            fireCount: entry["fired"].flatMap(integer) ?? 0)
    }

    /// A uint64 as QEMU prints it: thresholds come out signed (2^64-1 as -1).
    static func integer(_ value: JSONValue) -> UInt64? {
        switch value {
        case .int(let number): UInt64(bitPattern: number)
        case .uint(let number): number
        default: nil
        }
    }

    private static func timestamp(_ value: JSONValue?) -> WatchTimestamp? {
        guard case .int(let seconds)? = value?["seconds"], case .int(let microseconds)? = value?["microseconds"] else { return nil }
        return WatchTimestamp(seconds: seconds, microseconds: microseconds)
    }
}
