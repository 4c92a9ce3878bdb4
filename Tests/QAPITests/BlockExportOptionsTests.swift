import JSON
import Testing

@testable import QAPI

/// Texts observed with qemu-storage-daemon 7.2 (`--export`, QMP `block-export-add`).
struct BlockExportOptionsTests {
    private func commandLine(_ text: String) throws -> BlockExportOptions {
        try BlockExportOptions.decode(KeyvalParser.parse(text, impliedKey: "type"), mode: .keyval)
    }

    private func qmp(_ object: JSONObject) throws(QAPIError) -> BlockExportOptions {
        try BlockExportOptions.decode(object, mode: .json)
    }

    @Test func nbdExportFromCommandLine() throws {
        let options = try commandLine("nbd,id=e1,node-name=d0,name=disk0,writable=on,description=text,bitmaps.0=bm0,allocation-depth=on")
        #expect(options == BlockExportOptions(
            id: "e1", nodeName: "d0",
            variant: .nbd(NBDExportOptions(name: "disk0", description: "text", bitmaps: [.local(name: "bm0")], allocationDepth: true)),
            writable: true))
        #expect(options.type == .nbd)
    }

    @Test func defaults() throws {
        let options = try commandLine("type=nbd,id=e0,node-name=f0")
        #expect(!options.writable && !options.writethrough && !options.fixedIOThread && options.iothread == nil)
        #expect(options.variant == .nbd(NBDExportOptions()))
    }

    @Test func highWaterNoSpaceOptions() throws {
        let options = try commandLine("nbd,id=e0,node-name=f0,__io.highwater_on-enospc=hold,__io.highwater_enospc-timeout=5")
        #expect(options.variant == .nbd(NBDExportOptions(onNoSpace: .hold, noSpaceTimeoutSeconds: 5)))
        let fromQMP = try qmp(["type": "nbd", "id": "e0", "node-name": "f0", "__io.highwater_on-enospc": "report"])
        #expect(fromQMP.variant == .nbd(NBDExportOptions(onNoSpace: .report, noSpaceTimeoutSeconds: 60)))
        #expect(throws: QAPIError("Parameter '__io.highwater_on-enospc' does not accept value 'stop'")) {
            try commandLine("nbd,id=e0,node-name=f0,__io.highwater_on-enospc=stop")
        }
        #expect(throws: QAPIError.self) {
            try qmp(["type": "nbd", "id": "e0", "node-name": "f0", "__io.highwater_enospc-timeout": -1])
        }
    }

    @Test func emptyNameIsKept() throws {
        #expect(try commandLine("nbd,id=e0,node-name=f0,name=,").variant == .nbd(NBDExportOptions(name: "")))
    }

    @Test func nbdExportFromQMP() throws {
        let options = try qmp([
            "type": "nbd", "id": "e", "node-name": "n", "writable": true, "name": "x", "description": "d",
            "allocation-depth": true, "iothread": "io0", "fixed-iothread": true, "writethrough": true,
            "bitmaps": ["b0", ["node": "n1", "name": "b1"]],
        ])
        #expect(options == BlockExportOptions(
            id: "e", nodeName: "n",
            variant: .nbd(NBDExportOptions(name: "x", description: "d",
                                           bitmaps: [.local(name: "b0"), .external(node: "n1", name: "b1")],
                                           allocationDepth: true)),
            writable: true, writethrough: true, iothread: "io0", fixedIOThread: true))
    }

    @Test func commandLineErrors() {
        #expect(throws: QAPIError("Parameter 'type' is missing")) { try commandLine("id=e") }
        #expect(throws: QAPIError("Parameter 'type' does not accept value 'bogus'")) { try commandLine("type=bogus") }
        #expect(throws: QAPIError("Parameter 'id' is missing")) { try commandLine("nbd,node-name=n") }
        #expect(throws: QAPIError("Parameter 'node-name' is missing")) { try commandLine("nbd,id=e") }
        #expect(throws: QAPIError("Parameter 'bitmap' is unexpected")) { try commandLine("type=nbd,id=e,node-name=n,bitmap=x") }
        #expect(throws: QAPIError("Parameter 'bogus' is unexpected")) { try commandLine("nbd,id=e,node-name=n,bitmaps.0=x,bogus=1") }
        #expect(throws: QAPIError("Invalid parameter type for 'bitmaps', expected: array")) {
            try commandLine("nbd,id=e,node-name=n,bitmaps=x")
        }
        #expect(throws: QAPIError("Parameter 'bitmaps.0.node' is missing")) { try commandLine("nbd,id=e,node-name=n,bitmaps.0.x=x") }
        #expect(throws: QAPIError("Parameter 'writable' expects 'on' or 'off'")) { try commandLine("nbd,id=e,node-name=n,writable=2") }
    }

    @Test func qmpErrors() {
        #expect(throws: QAPIError("Invalid parameter type for 'null', expected: BlockDirtyBitmapOrStr")) {
            try qmp(["type": "nbd", "id": "e", "node-name": "n", "bitmaps": [5]])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'bitmaps', expected: array")) {
            try qmp(["type": "nbd", "id": "e", "node-name": "n", "bitmaps": "x"])
        }
        #expect(throws: QAPIError("Parameter 'bitmaps[0].name' is missing")) {
            try qmp(["type": "nbd", "id": "e", "node-name": "n", "bitmaps": [["node": "x"]]])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'writable', expected: boolean")) {
            try qmp(["type": "nbd", "id": "e", "node-name": "n", "writable": "on"])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'name', expected: string")) {
            try qmp(["type": "nbd", "id": "e", "node-name": "n", "name": nil])
        }
    }

    @Test func otherExportTypes() throws {
        #expect(throws: QAPIError("Parameter 'mountpoint' is missing")) { try qmp(["type": "fuse", "id": "e", "node-name": "n"]) }
        #expect(throws: QAPIError("Parameter 'num-queues' expects uint16_t")) {
            try qmp(["type": "vhost-user-blk", "id": "e", "node-name": "n", "addr": ["type": "unix", "path": "/x"], "num-queues": 70000])
        }
        #expect(throws: QAPIError("Parameter 'logical-block-size' expects uint64")) {
            try qmp(["type": "vhost-user-blk", "id": "e", "node-name": "n", "addr": ["type": "unix", "path": "/x"], "logical-block-size": "1"])
        }
        #expect(throws: QAPIError("Parameter 'logical-block-size' expects size")) {
            try commandLine("type=vduse-blk,id=e,node-name=n,name=x,logical-block-size=1.5")
        }
        let vduse = try commandLine("type=vduse-blk,id=e,node-name=n,name=x,logical-block-size=4K")
        guard case .vduseBlk(let options) = vduse.variant else { Issue.record("not vduse"); return }
        #expect(options.logicalBlockSize == 4096)
        let fuse = try commandLine("fuse,id=f0,node-name=d0,mountpoint=/mnt/file,writable=on,growable=off,allow-other=auto")
        #expect(fuse.writable)
        #expect(fuse.variant == .fuse(FuseExportOptions(mountpoint: "/mnt/file", growable: false, allowOther: .auto)))
        let vhost = try commandLine("vhost-user-blk,id=v0,node-name=d0,addr.type=unix,addr.path=/run/vub.sock,num-queues=1")
        #expect(vhost.variant == .vhostUserBlk(VhostUserBlkExportOptions(address: .unix(UnixSocketAddress(path: "/run/vub.sock")), numQueues: 1)))
    }
}
