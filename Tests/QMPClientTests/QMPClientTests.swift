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
}
