import JSON
import QMPClient
import Testing
@testable import HighWaterWatch

@Suite struct WatchFormatterTests {
    let timestamp = QMPTimestamp(seconds: 1_700_000_000, microseconds: 5000)

    @Test func jsonLinesCarryTypeDaemonAndTimestamp() {
        let event = WatchRecord(timestamp: timestamp, daemon: "/tmp/q.sock", kind: .event(
            name: "__io.highwater_WRITE_THRESHOLD", data: ["node-name": "disk0", "name": "warn"]))
        #expect(WatchFormatter.json(event) == #"{"timestamp": {"seconds": 1700000000, "microseconds": 5000}, "daemon": "/tmp/q.sock", "#
            + #""type": "event", "event": "__io.highwater_WRITE_THRESHOLD", "data": {"node-name": "disk0", "name": "warn"}}"# + "\n")
        let use = WatchRecord(timestamp: timestamp, daemon: "h:1", kind: .use(NodeUse(
            nodeName: "disk0", size: 1000, highestOffset: 10, writeThreshold: 0,
            thresholds: [.init(name: "a", value: 800, percent: 80, mode: "re-arm", isArmed: false, fireCount: 2)])))
        #expect(WatchFormatter.json(use).hasSuffix(#""type": "use", "node-name": "disk0", "size": 1000, "highest-offset": 10, "#
            + #""write-threshold": 0, "thresholds": [{"name": "a", "write-threshold": 800, "percent": 80, "mode": "re-arm", "#
            + #""armed": false, "fired": 2}]}"# + "\n"))
        let gone = WatchRecord(timestamp: timestamp, daemon: "d", kind: .disconnected(reason: "closed", retryMilliseconds: 250))
        #expect(WatchFormatter.json(gone).hasSuffix(#""type": "disconnected", "reason": "closed", "retry-ms": 250}"# + "\n"))
    }

    @Test func textSaysWhatHappenedInUnits() {
        #expect(WatchFormatter.text(.event(name: "BLOCK_WRITE_THRESHOLD", data: [
            "node-name": "disk0", "amount-exceeded": 101_711_872, "write-threshold": 536_870_912,
        ])) == "EVENT BLOCK_WRITE_THRESHOLD disk0: threshold 512.0 MiB exceeded by 97.0 MiB")
        #expect(WatchFormatter.text(.event(name: "__io.highwater_WRITE_THRESHOLD", data: [
            "node-name": "disk0", "name": "warn", "write-threshold": 858_993_459, "amount-exceeded": 1024, "percent": 80, "cause": "write",
        ])) == "EVENT __io.highwater_WRITE_THRESHOLD disk0 'warn' (80 %): 819.2 MiB exceeded by 1.0 KiB, on write")
        #expect(WatchFormatter.text(.event(name: "BLOCK_EXPORT_DELETED", data: ["id": "e0"])) == #"EVENT BLOCK_EXPORT_DELETED {"id": "e0"}"#)
        #expect(WatchFormatter.text(.use(NodeUse(
            nodeName: "disk0", size: 1 << 30, highestOffset: 600 << 20, writeThreshold: 512 << 20,
            thresholds: [.init(name: "warn", value: 858_993_459, percent: 80, mode: "re-arm", isArmed: false, fireCount: 1)])))
            == "disk0: written to 600.0 MiB of 1.0 GiB (58.6 %); threshold 512.0 MiB; 'warn' 80 % = 819.2 MiB re-arm fired 1x")
        #expect(WatchFormatter.text(.use(NodeUse(nodeName: "n", size: 0, highestOffset: 0, writeThreshold: 0, thresholds: nil)))
            == "n: written to 0 B of 0 B; threshold off")
        #expect(WatchFormatter.text(.disconnected(reason: "gone", retryMilliseconds: 1500)) == "disconnected: gone; retrying in 1.5 s")
        #expect(WatchFormatter.human(WatchRecord(timestamp: timestamp, daemon: "q", kind: .nodeRemoved("n"))).hasSuffix(".005 q  n: removed\n"))
    }

    @Test(arguments: [(UInt64(0), "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (UInt64.max, "16.0 EiB")])
    func byteCounts(count: UInt64, text: String) {
        #expect(WatchFormatter.bytes(count) == text)
    }

    @Test(arguments: [
        ("/tmp/qmp.sock", QMPAddress.unix(path: "/tmp/qmp.sock")),
        ("qmp.sock", .unix(path: "qmp.sock")),
        ("localhost:4444", .tcp(host: "localhost", port: 4444)),
        ("127.0.0.1:4444", .tcp(host: "127.0.0.1", port: 4444)),
        ("[::1]:4444", .tcp(host: "::1", port: 4444)),
        ("./host:4444", .unix(path: "./host:4444")),
        ("host:notaport", .unix(path: "host:notaport")),
        (":4444", .unix(path: ":4444")),
    ])
    func targets(argument: String, address: QMPAddress) {
        #expect(WatchTarget(argument).address == address)
    }

    @Test func targetsPrintAsGiven() {
        #expect(WatchTarget("[::1]:4444").description == "[::1]:4444")
        #expect(WatchTarget("h:1").description == "h:1")
    }
}
