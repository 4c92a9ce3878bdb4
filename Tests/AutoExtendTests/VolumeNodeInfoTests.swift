import JSON
import Testing
@testable import AutoExtend

@Suite struct VolumeNodeInfoTests {
    /// `query-named-block-nodes` (flat) of a qcow2 image on a loop device, as the daemon
    /// answers it (members trimmed to those read).
    let nodes: JSONValue = [
        ["node-name": "disk0", "drv": "qcow2", "file": "/dev/loop3", "image": ["virtual-size": 2147483648, "filename": "/dev/loop3"]],
        ["node-name": "vol0", "drv": "host_device", "file": "/dev/loop3", "image": ["virtual-size": 67108864, "filename": "/dev/loop3"]],
        ["node-name": "scratch", "drv": "null-co", "file": "null-co://", "image": ["virtual-size": 1024]],
    ]

    @Test func findsTheProtocolNodeAndTheImageOnIt() throws {
        let info = try VolumeNodeInfo.find("vol0", in: nodes)
        #expect(info == VolumeNodeInfo(
            nodeName: "vol0", driver: "host_device", filename: "/dev/loop3", capacity: 64 << 20,
            formatDriver: "qcow2", formatVirtualSize: 2 << 30, formatNodeNames: ["disk0"]))
        #expect(info.eventNodeNames == ["vol0", "disk0"])
    }

    @Test func anUnknownNodeListsTheKnownOnes() {
        #expect(throws: VolumeNodeError.unknownNode("vol9", known: ["disk0", "vol0", "scratch"])) {
            try VolumeNodeInfo.find("vol9", in: nodes)
        }
        #expect(VolumeNodeError.unknownNode("vol9", known: ["disk0", "vol0"]).description
            == "no block node named 'vol9' (the daemon has: disk0, vol0)")
    }

    @Test func aFormatNodeIsRefusedNamingItsFileNode() {
        #expect(throws: VolumeNodeError.notAProtocolNode("disk0", driver: "qcow2", protocolNode: "vol0")) {
            try VolumeNodeInfo.find("disk0", in: nodes)
        }
        #expect(VolumeNodeError.notAProtocolNode("disk0", driver: "qcow2", protocolNode: "vol0").description
            == "node 'disk0' is a qcow2 node, not a volume (host_device or file): manage its file node 'vol0' instead")
        #expect(throws: VolumeNodeError.notAProtocolNode("scratch", driver: "null-co", protocolNode: nil)) {
            try VolumeNodeInfo.find("scratch", in: nodes)
        }
    }

    @Test func readsTheHighestOffsetFromBlockstats() throws {
        let stats: JSONValue = [
            ["node-name": "vol0", "stats": ["wr_highest_offset": 42, "wr_bytes": 7]],
            ["node-name": "disk0", "stats": ["wr_highest_offset": 9]],
        ]
        #expect(try VolumeNodeInfo.highestOffset(of: "vol0", in: stats) == 42)
        #expect(throws: VolumeNodeError.unknownNode("vol1", known: ["vol0", "disk0"])) {
            try VolumeNodeInfo.highestOffset(of: "vol1", in: stats)
        }
    }

    @Test func theMaximumDefaultsFromTheImage() throws {
        var info = try VolumeNodeInfo.find("vol0", in: nodes)
        let volume = VolumeConfiguration(nodeName: "vol0", backend: .loop(device: nil))
        #expect(try VolumeController<ManualClock>.maximum(volume, info) == 2253 << 20)
        info.formatDriver = "raw"
        #expect(try VolumeController<ManualClock>.maximum(volume, info) == 2 << 30)
        var explicit = volume
        explicit.maximum = 100
        #expect(try VolumeController<ManualClock>.maximum(explicit, info) == 100)
        info.formatDriver = nil
        #expect(throws: ConfigurationError("node 'vol0': no maximum size given, and no qcow2 or raw image on it to take one from")) {
            try VolumeController<ManualClock>.maximum(volume, info)
        }
    }

    @Test func readsTheHighestOffsetFromThePerNodeQuery() throws {
        let reply: JSONValue = [["node-name": "vol0", "size": 100, "highest-offset": 42, "write-threshold": 0, "thresholds": []]]
        #expect(try VolumeNodeInfo.highestOffset(of: "vol0", inWriteThresholds: reply) == 42)
        #expect(throws: VolumeNodeError.unknownNode("vol1", known: ["vol0"])) {
            try VolumeNodeInfo.highestOffset(of: "vol1", inWriteThresholds: reply)
        }
    }

    @Test func findsTheExportsHoldingWrites() {
        let exports: JSONValue = [
            ["node-name": "disk2", "shutting-down": false, "type": "nbd", "id": "e2"],
            ["node-name": "disk1", "shutting-down": false, "type": "nbd", "id": "e1", "__io.highwater_io-status": "ok"],
            ["node-name": "disk0", "shutting-down": false, "type": "nbd", "id": "e0", "__io.highwater_io-status": "nospace"],
        ]
        #expect(VolumeNodeInfo.nodesHoldingWrites(inExports: exports) == ["disk0"])
        #expect(VolumeNodeInfo.nodesHoldingWrites(inExports: []) == [])
    }
}
