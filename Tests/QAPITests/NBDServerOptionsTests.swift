import JSON
import Testing

@testable import QAPI

/// Texts observed with qemu-storage-daemon 7.2 (`--nbd-server`, QMP `nbd-server-start`).
struct NBDServerOptionsTests {
    private func commandLine(_ text: String) throws -> NBDServerOptions {
        try NBDServerOptions.decodeCommandLine(KeyvalParser.parse(text), mode: .keyval)
    }

    private func expectCommandLineError(_ text: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: QAPIError(message), sourceLocation: sourceLocation) { try commandLine(text) }
    }

    @Test func unixAddress() throws {
        let options = try commandLine("addr.type=unix,addr.path=/run/qsd/nbd.sock,max-connections=010")
        #expect(options == NBDServerOptions(address: .unix(UnixSocketAddress(path: "/run/qsd/nbd.sock")), maxConnections: 8))
    }

    @Test func inetAddressWithTLS() throws {
        let options = try commandLine("addr.type=inet,addr.host=127.0.0.1,addr.port=10809,addr.ipv4=on,tls-creds=tls0,tls-authz=a0")
        var inet = InetSocketAddress(host: "127.0.0.1", port: "10809")
        inet.ipv4 = true
        #expect(options == NBDServerOptions(address: .inet(inet), tlsCreds: "tls0", tlsAuthz: "a0"))
    }

    @Test func otherAddressKinds() throws {
        #expect(try commandLine("addr.type=fd,addr.str=3").address == .fd("3"))
        #expect(try commandLine("addr.type=vsock,addr.cid=2,addr.port=10809").address == .vsock(VsockSocketAddress(cid: "2", port: "10809")))
    }

    @Test func commandLineErrors() {
        expectCommandLineError("", "Parameter 'addr' is missing")
        expectCommandLineError("max-connections=x", "Parameter 'addr' is missing")
        expectCommandLineError("addr.type=unix", "Parameter 'addr.path' is missing")
        expectCommandLineError("addr.type=unix,addr.data.path=/x", "Parameter 'addr.path' is missing")
        expectCommandLineError("addr.type=bogus", "Parameter 'type' does not accept value 'bogus'")
        expectCommandLineError("addr.type=inet,addr.host=localhost", "Parameter 'addr.port' is missing")
        expectCommandLineError("tls-creds=5,addr.type=inet", "Parameter 'addr.host' is missing")
        expectCommandLineError("addr.type=vsock,addr.cid=1", "Parameter 'addr.port' is missing")
        expectCommandLineError("addr.type=fd", "Parameter 'addr.str' is missing")
        expectCommandLineError("addr=x", "Invalid parameter type for 'addr', expected: object")
        expectCommandLineError("addr.type.x=x", "Parameters 'addr.type.*' are unexpected")
        expectCommandLineError("addr.type=unix,addr.path.x=x", "Parameters 'addr.path.*' are unexpected")
        expectCommandLineError("addr.type=inet,addr.host=h,addr.port=1,addr.ipv4=maybe", "Parameter 'addr.ipv4' expects 'on' or 'off'")
        expectCommandLineError("addr.type=unix,addr.path=/x,max-connections=-1", "Parameter 'max-connections' expects uint32_t")
        expectCommandLineError("addr.type=unix,addr.path=/x,max-connections=4294967296", "Parameter 'max-connections' expects uint32_t")
        expectCommandLineError("addr.type=unix,addr.path=/x,max-connections=1x", "Parameter 'max-connections' expects integer")
        expectCommandLineError("addr.type=unix,addr.path=/x,max-connections=010,bogus=1", "Parameter 'bogus' is unexpected")
    }

    @Test func commandLineJSONForm() throws {
        func decode(_ object: JSONObject) throws(QAPIError) -> NBDServerOptions {
            try NBDServerOptions.decodeCommandLine(object, mode: .json)
        }
        #expect(try decode(["addr": ["type": "unix", "path": "/x"], "max-connections": 4]).maxConnections == 4)
        #expect(throws: QAPIError("Parameter 'addr.path' is missing")) {
            try decode(["addr": ["type": "unix", "data": ["path": "/x"]]])
        }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint32_t")) {
            try decode(["addr": ["type": "unix", "path": "/x"], "max-connections": -1])
        }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint64")) {
            try decode(["addr": ["type": "unix", "path": "/x"], "max-connections": 1.5])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'addr.type', expected: string")) {
            try decode(["addr": ["type": 5, "path": "/x"]])
        }
        #expect(throws: QAPIError("Parameter 'addr.bogus' is unexpected")) {
            try decode(["addr": ["type": "unix", "path": "/x", "bogus": 1]])
        }
    }

    @Test func nbdServerStartUsesTheLegacyAddress() throws {
        func decode(_ object: JSONObject) throws(QAPIError) -> NBDServerOptions {
            try NBDServerOptions.decodeNBDServerStart(object)
        }
        #expect(try decode(["addr": ["type": "unix", "data": ["path": "/x"]], "max-connections": 2])
            == NBDServerOptions(address: .unix(UnixSocketAddress(path: "/x")), maxConnections: 2))
        #expect(try decode(["addr": ["type": "inet", "data": ["host": "h", "port": "1"]]]).address
            == .inet(InetSocketAddress(host: "h", port: "1")))
        #expect(throws: QAPIError("Parameter 'addr' is missing")) { try decode([:]) }
        #expect(throws: QAPIError("Parameter 'addr.data' is missing")) { try decode(["addr": ["type": "unix", "path": "/x"]]) }
        #expect(throws: QAPIError("Parameter 'addr.data.path' is missing")) { try decode(["addr": ["type": "unix", "data": [:]]]) }
        #expect(throws: QAPIError("Parameter 'addr.bogus' is unexpected")) {
            try decode(["addr": ["type": "unix", "data": ["path": "/x"], "bogus": 1]])
        }
        #expect(throws: QAPIError("Parameter 'addr.data.bogus' is unexpected")) {
            try decode(["addr": ["type": "unix", "data": ["path": "/x", "bogus": 1]]])
        }
        #expect(throws: QAPIError("Parameter 'to' expects uint16_t")) {
            try decode(["addr": ["type": "inet", "data": ["host": "x", "port": "1", "to": 70000]]])
        }
        #expect(throws: QAPIError("Invalid parameter type for 'addr.data', expected: object")) {
            try decode(["addr": ["type": "unix", "data": "x"]])
        }
        #expect(throws: QAPIError("Parameter 'type' does not accept value 'bogus'")) { try decode(["addr": ["type": "bogus"]]) }
        #expect(throws: QAPIError("Parameter 'max-connections' expects uint32_t")) {
            try decode(["addr": ["type": "unix", "data": ["path": "/x"]], "max-connections": -1])
        }
    }
}
