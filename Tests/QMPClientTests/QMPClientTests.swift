import Glibc
import JSON
import NIOPosix
import Testing
import QMPClient

/// The client against real sockets.
@Suite struct QMPClientTests {
    @Test func aMissingSocketIsReportedInTheSystemsWords() async {
        let address = QMPAddress.unix(path: "/nonexistent/highwater-qmp.sock")
        await #expect(throws: QMPClientError.connectFailed(address: address, reason: "No such file or directory")) {
            _ = try await QMPClient.connect(to: address, group: MultiThreadedEventLoopGroup.singleton)
        }
    }

    @Test func negotiatesRunsCommandsAndDeliversEvents() async throws {
        let (server, path) = try await FakeMonitor.start()
        defer {
            server.close(promise: nil)
            unlink(path)
        }
        let client = try await QMPClient.connect(to: .unix(path: path), group: MultiThreadedEventLoopGroup.singleton)
        #expect(client.greeting == QMPGreeting(version: "7.2.0", package: "", capabilities: ["oob"]))
        #expect(try await client.execute("query-status") == "query-status")
        await #expect(throws: QMPClientError.commandFailed(command: "fail", errorClass: "GenericError", description: "failed as asked")) {
            _ = try await client.execute("fail")
        }
        await client.close()
        var names: [String] = []
        for await event in client.events {
            #expect(event.timestamp == QMPTimestamp(seconds: 1, microseconds: 2))
            names.append(event.data["name"]?.stringValue ?? "")
        }
        #expect(names == ["qmp_capabilities", "query-status"])
        #expect(await client.closed() == .connectionClosed)
    }
}
