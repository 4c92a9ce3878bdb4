import JSON
import QMPClient

/// What `highwater watch` does on one negotiated QMP connection, as a pure state machine:
/// it is fed the connection's greeting, events, command replies and timer ticks, and answers
/// with commands to run and records to print.
///
/// Once connected it lists the commands (to learn whether the daemon has HighWater's named
/// thresholds), then refreshes the use of every node: once at the start, after every event,
/// and on each tick. A refresh is `query-named-block-nodes` (sizes, classic thresholds),
/// `query-blockstats` with `query-nodes` (highest written offsets) and, where available,
/// `__io.highwater_query-write-thresholds`. Only nodes whose use changed are reported. Events
/// that arrive during a refresh ask for one more.
public struct WatchSession: Sendable {
    /// The commands the session runs.
    public enum Query: Sendable, Hashable {
        case commands
        case nodes
        case statistics
        case thresholds

        public var command: String {
            switch self {
            case .commands: "query-commands"
            case .nodes: "query-named-block-nodes"
            case .statistics: "query-blockstats"
            case .thresholds: WatchSession.namedThresholdQuery
            }
        }

        public var arguments: JSONObject? {
            switch self {
            case .nodes: ["flat": true]
            case .statistics: ["query-nodes": true]
            case .commands, .thresholds: nil
            }
        }
    }

    public enum Input: Sendable, Equatable {
        /// The monitor greeted and accepted the capabilities negotiation.
        case connected(QMPGreeting)
        case event(QMPEvent)
        /// A query's `return` value; nil when the daemon answered with an error.
        case reply(Query, JSONValue?)
        /// The periodic refresh is due.
        case tick
    }

    public enum Action: Sendable, Equatable {
        case execute(Query)
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
        case awaitingConnection
        case listingCommands
        case running
    }

    static let namedThresholdQuery = "__io.highwater_query-write-thresholds"

    private let daemon: String
    private var state = State.awaitingConnection
    private var hasNamedThresholds = false
    private var refresh: Refresh?
    private var refreshAgain = false
    private var reported: [String: NodeUse] = [:]
    private var reportedOrder: [String] = []

    public init(daemon: String) {
        self.daemon = daemon
    }

    public mutating func handle(_ input: Input, now: QMPTimestamp) -> [Action] {
        switch input {
        case .connected(let greeting):
            guard case .awaitingConnection = state else { return [] }
            state = .listingCommands
            return [
                .record(WatchRecord(timestamp: now, daemon: daemon, kind: .connected(version: greeting.version, package: greeting.package))),
                .execute(.commands),
            ]
        case .event(let event):
            var actions = [Action.record(WatchRecord(timestamp: event.timestamp ?? now, daemon: daemon,
                                                     kind: .event(name: event.name, data: event.data)))]
            if case .running = state { actions += startRefresh() }
            return actions
        case .reply(.commands, let reply):
            guard case .listingCommands = state else { return [] }
            let names = reply?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            hasNamedThresholds = names.contains(Self.namedThresholdQuery)
            state = .running
            return startRefresh()
        case .reply(let query, let reply):
            return refreshReply(query, reply, now: now)
        case .tick:
            guard case .running = state else { return [] }
            return startRefresh()
        }
    }

    // MARK: Refresh

    private mutating func startRefresh() -> [Action] {
        guard refresh == nil else {
            refreshAgain = true
            return []
        }
        var queries: [Query] = [.nodes, .statistics]
        if hasNamedThresholds { queries.append(.thresholds) }
        refresh = Refresh(outstanding: queries.count)
        return queries.map(Action.execute)
    }

    private mutating func refreshReply(_ query: Query, _ reply: JSONValue?, now: QMPTimestamp) -> [Action] {
        guard var current = refresh else { return [] }
        // An error reply leaves its part empty: what the others say is still worth showing.
        let list = reply?.arrayValue ?? []
        switch query {
        case .nodes: current.nodes = list
        case .statistics: current.statistics = list
        case .thresholds: current.thresholds = list
        case .commands: return []
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

    private mutating func report(_ uses: [NodeUse], now: QMPTimestamp) -> [Action] {
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
            if let name = entry["node-name"]?.stringValue, let offset = entry["stats"]?["wr_highest_offset"]?.unsignedValue {
                highestOffsets[name] = offset
            }
            if let parent = entry["parent"] { collect(parent) }
        }
        refresh.statistics?.forEach(collect)
        var named: [String: (size: UInt64?, thresholds: [NodeUse.NamedThreshold])] = [:]
        for node in refresh.thresholds ?? [] {
            guard let name = node["node-name"]?.stringValue else { continue }
            named[name] = (node["size"]?.unsignedValue, (node["thresholds"]?.arrayValue ?? []).compactMap(namedThreshold))
        }
        return (refresh.nodes ?? []).reversed().compactMap { node -> NodeUse? in
            guard let name = node["node-name"]?.stringValue else { return nil }
            return NodeUse(
                nodeName: name,
                size: named[name]?.size ?? node["image"]?["virtual-size"]?.unsignedValue ?? 0,
                highestOffset: highestOffsets[name] ?? 0,
                writeThreshold: node["write_threshold"]?.unsignedValue ?? 0,
                thresholds: refresh.thresholds == nil ? nil : named[name]?.thresholds ?? [])
        }
    }

    private static func namedThreshold(_ entry: JSONValue) -> NodeUse.NamedThreshold? {
        guard let name = entry["name"]?.stringValue, let value = entry["write-threshold"]?.unsignedValue else { return nil }
        return NodeUse.NamedThreshold(
            name: name, value: value, percent: entry["percent"]?.unsignedValue.map(Int.init),
            mode: entry["mode"]?.stringValue ?? "one-shot", isArmed: entry["armed"]?.boolValue ?? false,
            fireCount: entry["fired"]?.unsignedValue ?? 0)
    }
}
