import JSON
import QMPClient
import Testing
@testable import HighWaterWatch

/// The watch's QMP conversation, input by input.
@Suite struct WatchSessionTests {
    static let now = QMPTimestamp(seconds: 1_700_000_000, microseconds: 250_000)

    static let greeting = QMPGreeting(version: "7.2.0", package: "HighWater 0.1", capabilities: ["oob"])

    static func commands(_ names: [String]) -> WatchSession.Input {
        .reply(.commands, .array(names.map { ["name": .string($0)] }))
    }

    static let nodes = WatchSession.Input.reply(.nodes, [
        ["node-name": "disk0", "write_threshold": 536_870_912, "image": ["virtual-size": 1_073_741_824]],
        ["node-name": "file0", "write_threshold": -1, "image": ["virtual-size": 1_073_741_824]],
    ])

    static let statistics = WatchSession.Input.reply(.statistics, [
        ["node-name": "disk0", "stats": ["wr_highest_offset": 4096], "parent": ["node-name": "file0", "stats": ["wr_highest_offset": 8192]]],
    ])

    static let thresholds = WatchSession.Input.reply(.thresholds, [
        ["node-name": "disk0", "size": 1_073_741_824, "highest-offset": 4096, "write-threshold": 536_870_912, "thresholds": [
            ["name": "warn", "write-threshold": 858_993_459, "percent": 80, "mode": "re-arm", "fire-if-past": false,
             "armed": true, "fired": 0],
        ]],
        ["node-name": "file0", "size": 1_073_741_824, "highest-offset": 8192, "write-threshold": -1, "thresholds": []],
    ])

    private func feed(_ session: inout WatchSession, _ input: WatchSession.Input) -> [WatchSession.Action] {
        session.handle(input, now: Self.now)
    }

    private func sent(_ actions: [WatchSession.Action]) -> [String] {
        actions.compactMap { if case .execute(let query) = $0 { query.command } else { nil } }
    }

    private func records(_ actions: [WatchSession.Action]) -> [WatchRecord.Kind] {
        actions.compactMap { if case .record(let r) = $0 { r.kind } else { nil } }
    }

    /// A session through the connection and command list, with its first refresh sent.
    private func runningSession(named: Bool = true) -> WatchSession {
        var session = WatchSession(daemon: "qmp.sock")
        _ = feed(&session, .connected(Self.greeting))
        _ = feed(&session, Self.commands(named ? ["query-blockstats", "__io.highwater_query-write-thresholds"] : ["query-blockstats"]))
        return session
    }

    @Test func reportsTheConnectionThenListsCommandsThenRefreshes() {
        var session = WatchSession(daemon: "qmp.sock")
        let connected = feed(&session, .connected(Self.greeting))
        #expect(records(connected) == [.connected(version: "7.2.0", package: "HighWater 0.1")])
        #expect(sent(connected) == ["query-commands"])
        let refresh = feed(&session, Self.commands(["__io.highwater_query-write-thresholds"]))
        #expect(sent(refresh) == ["query-named-block-nodes", "query-blockstats", "__io.highwater_query-write-thresholds"])
        #expect(WatchSession.Query.nodes.arguments == ["flat": true])
        #expect(WatchSession.Query.statistics.arguments == ["query-nodes": true])
    }

    @Test func refreshJoinsTheRepliesOldestNodeFirst() {
        var session = runningSession()
        #expect(feed(&session, Self.statistics).isEmpty)
        #expect(feed(&session, Self.thresholds).isEmpty)
        let uses = records(feed(&session, Self.nodes))
        #expect(uses == [
            .use(NodeUse(nodeName: "file0", size: 1_073_741_824, highestOffset: 8192, writeThreshold: .max, thresholds: [])),
            .use(NodeUse(nodeName: "disk0", size: 1_073_741_824, highestOffset: 4096, writeThreshold: 536_870_912, thresholds: [
                .init(name: "warn", value: 858_993_459, percent: 80, mode: "re-arm", isArmed: true, fireCount: 0),
            ])),
        ])
    }

    @Test func withoutNamedThresholdsTwoQueriesDo() {
        var session = runningSession(named: false)
        _ = feed(&session, Self.statistics)
        let uses = records(feed(&session, Self.nodes))
        #expect(uses.count == 2)
        #expect(uses.allSatisfy { if case .use(let use) = $0 { use.thresholds == nil } else { false } })
    }

    @Test func eventsAreRecordedWithTheirTimestampAndTriggerOneRefreshAtATime() {
        var session = runningSession()
        let event = WatchSession.Input.event(QMPEvent(
            name: "BLOCK_WRITE_THRESHOLD", data: ["node-name": "disk0", "amount-exceeded": 1, "write-threshold": 2],
            timestamp: QMPTimestamp(seconds: 1_700_000_001, microseconds: 5)))
        // The first refresh is still out: the event is printed, the refresh only noted.
        let during = feed(&session, event)
        guard case .record(let record)? = during.first else { Issue.record("no record"); return }
        #expect(record.timestamp == QMPTimestamp(seconds: 1_700_000_001, microseconds: 5))
        #expect(record.kind == .event(name: "BLOCK_WRITE_THRESHOLD", data: ["node-name": "disk0", "amount-exceeded": 1, "write-threshold": 2]))
        #expect(sent(during).isEmpty)
        _ = feed(&session, Self.statistics)
        _ = feed(&session, Self.thresholds)
        let finished = feed(&session, Self.nodes)
        #expect(records(finished).count == 2)
        #expect(sent(finished).count == 3)
        // The same answers again change nothing: nothing is printed.
        _ = feed(&session, Self.statistics)
        _ = feed(&session, Self.thresholds)
        #expect(feed(&session, Self.nodes).isEmpty)
        // Now idle: an event refreshes at once, and so does a tick.
        #expect(sent(feed(&session, event)).count == 3)
    }

    @Test func onlyChangedAndRemovedNodesAreReported() {
        var session = runningSession(named: false)
        _ = feed(&session, Self.statistics)
        _ = feed(&session, Self.nodes)
        #expect(sent(session.handle(.tick, now: Self.now)).count == 2)
        _ = feed(&session, .reply(.statistics, [["node-name": "disk0", "stats": ["wr_highest_offset": 65536]]]))
        let changes = records(feed(&session, .reply(.nodes, [
            ["node-name": "disk0", "write_threshold": 0, "image": ["virtual-size": 1_073_741_824]],
        ])))
        #expect(changes == [
            .nodeRemoved("file0"),
            .use(NodeUse(nodeName: "disk0", size: 1_073_741_824, highestOffset: 65536, writeThreshold: 0, thresholds: nil)),
        ])
    }

    @Test func ticksBeforeTheCommandListAndStrayRepliesAreIgnored() {
        var session = WatchSession(daemon: "x")
        #expect(session.handle(.tick, now: Self.now).isEmpty)
        #expect(feed(&session, Self.nodes).isEmpty)
        #expect(sent(feed(&session, .connected(Self.greeting))) == ["query-commands"])
        #expect(session.handle(.tick, now: Self.now).isEmpty)
    }

    @Test func aFailedQueryLeavesItsPartEmpty() {
        var session = runningSession(named: false)
        _ = feed(&session, .reply(.statistics, nil))
        let uses = records(feed(&session, Self.nodes))
        #expect(uses.first == .use(NodeUse(nodeName: "file0", size: 1_073_741_824, highestOffset: 0, writeThreshold: .max, thresholds: nil)))
    }
}
