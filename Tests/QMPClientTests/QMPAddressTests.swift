import Testing
import QMPClient

@Suite struct QMPAddressTests {
    @Test(arguments: [
        ("/run/qmp.sock", QMPAddress.unix(path: "/run/qmp.sock")),
        ("unix:qmp.sock", .unix(path: "qmp.sock")),
        ("qmp.sock", .unix(path: "qmp.sock")),
        ("localhost:4444", .tcp(host: "localhost", port: 4444)),
        ("[::1]:4444", .tcp(host: "::1", port: 4444)),
        ("tcp:[::1]:4444", .tcp(host: "::1", port: 4444)),
        ("./host:4444", .unix(path: "./host:4444")),
    ])
    func parses(text: String, address: QMPAddress) {
        #expect(QMPAddress(text) == address)
    }

    @Test(arguments: ["host:99999", "tcp:nohost", "host:notaport", ":4444", "unix:", ""])
    func rejects(text: String) {
        #expect(QMPAddress(text) == nil)
    }

    @Test func printsWithItsKind() {
        #expect(QMPAddress.unix(path: "q").description == "unix:q")
        #expect(QMPAddress.tcp(host: "::1", port: 4444).description == "tcp:[::1]:4444")
    }
}
