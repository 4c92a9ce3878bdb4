import BlockCore
import Glibc
import JSON
import QMP
import Testing

@testable import QMPCommands

/// `__io.highwater_set-write-threshold`, `__io.highwater_clear-write-threshold`,
/// `__io.highwater_query-write-thresholds` and the `__io.highwater_WRITE_THRESHOLD` event.
@Suite struct WriteThresholdCommandsTests {
    private func fixtureWithNode(size: Int64 = 1_000_000) throws -> (CommandFixture, BlockNode) {
        let fixture = CommandFixture()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n0", "size": .int(size)])
        return (fixture, try #require(fixture.graph.node(named: "n0")))
    }

    private func events(_ fixture: CommandFixture) -> [(name: String, data: JSONObject?)] {
        fixture.events.events.withLock { $0 }
    }

    @Test func commandsAndEventAreListed() throws {
        let fixture = CommandFixture()
        let names = try fixture.value("query-commands").arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        for name in ["__io.highwater_set-write-threshold", "__io.highwater_clear-write-threshold", "__io.highwater_query-write-thresholds"] {
            #expect(names.contains(name), "\(name)")
        }
        let schema = try fixture.value("query-qmp-schema").arrayValue ?? []
        #expect(schema.contains { $0["name"] == "__io.highwater_WRITE_THRESHOLD" && $0["meta-type"] == "event" })
    }

    @Test func setThenCrossEmitsTheDownstreamEvent() throws {
        let (fixture, node) = try fixtureWithNode()
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "n0", "name": "warn", "percent": 80])
        try write(100, at: 799_950, to: node)
        try write(100, at: 900_000, to: node)
        let recorded = events(fixture)
        #expect(recorded.map(\.name) == ["__io.highwater_WRITE_THRESHOLD"])
        #expect(recorded.first?.data == [
            "node-name": "n0", "name": "warn", "write-threshold": 800_000, "amount-exceeded": 50, "percent": 80,
            "mode": "one-shot", "cause": "write", "node-size": 1_000_000, "highest-offset": 800_050,
        ])
    }

    @Test func queryReportsEveryNodeWithValuesAndStates() throws {
        let (fixture, node) = try fixtureWithNode()
        try fixture.value("blockdev-add", ["driver": "null-co", "node-name": "n1", "size": 4096])
        try fixture.value("block-set-write-threshold", ["node-name": "n0", "write-threshold": 900_000])
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "n0", "name": "a", "bytes": 1000])
        try fixture.value("__io.highwater_set-write-threshold",
                          ["node-name": "n0", "name": "b", "percent": 50, "mode": "re-arm", "fire-if-past": true])
        try write(10, at: 1000, to: node)
        let all = try fixture.value("__io.highwater_query-write-thresholds")
        #expect(all.arrayValue?.compactMap { $0["node-name"]?.stringValue } == ["n1", "n0"])
        #expect(try fixture.value("__io.highwater_query-write-thresholds", ["node-name": "n0"]) == [[
            "node-name": "n0", "size": 1_000_000, "highest-offset": 1010, "write-threshold": 900_000,
            "thresholds": [
                ["name": "a", "write-threshold": 1000, "mode": "one-shot", "fire-if-past": false, "armed": false, "fired": 1],
                ["name": "b", "write-threshold": 500_000, "percent": 50, "mode": "re-arm", "fire-if-past": true, "armed": true, "fired": 0],
            ],
        ]])
        #expect(all.arrayValue?.first == ["node-name": "n1", "size": 4096, "highest-offset": 0, "write-threshold": 0, "thresholds": []])
    }

    @Test func fireIfPastFiresBeforeTheReply() throws {
        let (fixture, node) = try fixtureWithNode()
        try write(4096, at: 0, to: node)
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "n0", "name": "late", "bytes": 1024, "fire-if-past": true])
        #expect(events(fixture).first?.data?["cause"] == "set")
        #expect(events(fixture).first?.data?["amount-exceeded"] == 3072)
    }

    @Test func blockResizeRearmsAndRecomputesPercentages() throws {
        let fixture = CommandFixture()
        let image = try TemporaryImage(size: 100_000)
        try fixture.value("blockdev-add", [
            "driver": "raw", "node-name": "r0", "file": ["driver": "file", "filename": .string(image.path)],
        ])
        let node = try #require(fixture.graph.node(named: "r0"))
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "r0", "name": "g", "percent": 50, "mode": "re-arm"])
        try write(10, at: 60_000, to: node)
        try write(10, at: 70_000, to: node)
        try fixture.value("block_resize", ["node-name": "r0", "size": 200_000])
        let entry = try fixture.value("__io.highwater_query-write-thresholds", ["node-name": "r0"]).arrayValue?.first
        #expect(entry?["size"] == 200_000)
        #expect(entry?["thresholds"] == [["name": "g", "write-threshold": 100_000, "percent": 50, "mode": "re-arm",
                                           "fire-if-past": false, "armed": true, "fired": 1]])
        try write(10, at: 100_000, to: node)
        #expect(events(fixture).compactMap { $0.data?["write-threshold"] } == [50_000, 100_000])
        try fixture.value("blockdev-del", ["node-name": "r0"])
    }

    @Test func clearingRemovesOnlyTheNamedThreshold() throws {
        let (fixture, node) = try fixtureWithNode()
        try fixture.value("block-set-write-threshold", ["node-name": "n0", "write-threshold": 100])
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "n0", "name": "a", "bytes": 50])
        try fixture.value("__io.highwater_clear-write-threshold", ["node-name": "n0", "name": "a"])
        #expect(fixture.errorText("__io.highwater_clear-write-threshold", ["node-name": "n0", "name": "a"])
                == "Node 'n0' has no write threshold named 'a'")
        try write(200, at: 0, to: node)
        #expect(events(fixture).map(\.name) == ["BLOCK_WRITE_THRESHOLD"])
        #expect(try fixture.value("query-named-block-nodes").arrayValue?.first?["write_threshold"] == 0)
    }

    @Test func argumentErrors() throws {
        let (fixture, _) = try fixtureWithNode()
        let set = "__io.highwater_set-write-threshold"
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x"]) == "Exactly one of 'bytes' and 'percent' must be given")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x", "bytes": 1, "percent": 1])
                == "Exactly one of 'bytes' and 'percent' must be given")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x", "percent": 0]) == "Parameter 'percent' expects a percentage from 1 to 100")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x", "percent": 101]) == "Parameter 'percent' expects a percentage from 1 to 100")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "", "bytes": 1]) == "Parameter 'name' expects a non-empty name")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x", "bytes": 1, "mode": "twice"])
                == "Parameter 'mode' does not accept value 'twice'")
        #expect(fixture.errorText(set, ["node-name": "nope", "name": "x", "bytes": 1]) == "Device 'nope' not found")
        #expect(fixture.errorText(set, ["node-name": "n0", "bytes": 1]) == "Parameter 'name' is missing")
        #expect(fixture.errorText(set, ["node-name": "n0", "name": "x", "bytes": 1, "extra": 1]) == "Parameter 'extra' is unexpected")
        #expect(fixture.errorText("__io.highwater_query-write-thresholds", ["node-name": "nope"]) == "Device 'nope' not found")
    }

    @Test func percentIsRefusedOnAGrowableFileNode() throws {
        let fixture = CommandFixture()
        let image = try TemporaryImage(size: 65536)
        try fixture.value("blockdev-add", ["driver": "file", "node-name": "f0", "filename": .string(image.path)])
        #expect(fixture.errorText("__io.highwater_set-write-threshold", ["node-name": "f0", "name": "p", "percent": 50])
                == "Node 'f0' grows with its writes: give its threshold in bytes")
        try fixture.value("__io.highwater_set-write-threshold", ["node-name": "f0", "name": "b", "bytes": 4096])
        try fixture.value("blockdev-del", ["node-name": "f0"])
    }
}

/// A sparse file in /tmp, removed when the value goes.
private final class TemporaryImage {
    let path = "/tmp/hw-thresholds-\(UInt32.random(in: 0...UInt32.max)).img"

    init(size: Int) throws {
        let descriptor = open(path, O_CREAT | O_RDWR | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw BlockError.system(errno: errno, operation: "open") }
        defer { close(descriptor) }
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw BlockError.system(errno: errno, operation: "ftruncate") }
    }

    deinit { unlink(path) }
}
