import JSON
import QAPI
import Testing

@testable import HighWaterDaemon

@Suite struct DaemonRuntimeTests {
    @Test func optionArgumentIsExactlyOneJSONObject() throws {
        #expect(try DaemonRuntime.parseJSONObject(#"{"driver": "null-co", 'node-name': "n0"}"#)
            == ["driver": "null-co", "node-name": "n0"])
        #expect(throws: DaemonStartupError.self) { try DaemonRuntime.parseJSONObject(#"{"driver":"null-co"} x"#) }
        do {
            _ = try DaemonRuntime.parseJSONObject(#"{"driver":"null-co"} {}"#)
            Issue.record("two values accepted")
        } catch {
            #expect("\(error)" == "Expecting at most one JSON value")
        }
        do {
            _ = try DaemonRuntime.parseJSONObject(#"{"driver":"null-co""#)
            Issue.record("truncated value accepted")
        } catch {
            #expect("\(error)" == "JSON parse error, premature EOI")
        }
    }

    @Test func listenAddressesFromQAPI() throws {
        let unix = try ListenAddress(.unix(UnixSocketAddress(path: "/run/x.sock")))
        #expect(unix.description == "/run/x.sock")
        let inet = try ListenAddress(.inet(InetSocketAddress(host: "127.0.0.1", port: "10809")))
        #expect(inet.description == "127.0.0.1:10809")
        #expect(throws: DaemonStartupError.self) { try ListenAddress(.inet(InetSocketAddress(host: "h", port: "nbd"))) }
        #expect(throws: DaemonStartupError.self) { try ListenAddress(.fd("3")) }
    }
}
