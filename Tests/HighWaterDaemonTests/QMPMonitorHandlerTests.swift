import JSON
import Logging
import NIOCore
import NIOPosix
import QMP
import QMPCommands
import Synchronization
import Testing

@testable import HighWaterDaemon

#if canImport(Glibc)
import Glibc
#endif

/// Echoes each command's `n` argument; `slow` commands take `ms` milliseconds (default 20),
/// so that input arrives while they run.
private final class EchoExecutor: QMPCommandExecutor {
    let executed = Mutex<[Int]>([])
    var commandNames: Set<String> { ["echo", "slow"] }

    func execute(_ request: QMPRequest) -> Result<JSONValue, QMPError> {
        if request.command == "slow" { usleep(UInt32(request.arguments["ms"]?.unsignedValue ?? 20) * 1000) }
        if let n = request.arguments["n"]?.unsignedValue { executed.withLock { $0.append(Int(n)) } }
        return .success(request.arguments["n"] ?? .null)
    }

    func commandReplied() {}
}

@Suite struct QMPMonitorHandlerTests {
    /// A monitor on one end of a socket pair, the test as its client on the other.
    private struct Monitor {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runner = CommandRunner()
        let executor = EchoExecutor()
        let channel: any Channel
        let client: CInt

        init() async throws {
            var pair: [CInt] = [0, 0]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
            _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
            client = pair[1]
            let hub = MonitorHub(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let (executor, runner, descriptor) = (self.executor, self.runner, pair[0])
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let output = MonitorOutput(channel: channel, descriptor: dup(descriptor))
                        try channel.pipeline.syncOperations.addHandler(QMPMonitorHandler(
                            version: ["qemu": ["micro": 0, "minor": 2, "major": 7]], executor: executor, runner: runner,
                            hub: hub, output: output, pretty: false))
                    }
                }
                .withConnectedSocket(pair[0]).get()
        }

        /// A monitor whose client has read the greeting and negotiated capabilities.
        static func negotiated() async throws -> Monitor {
            let monitor = try await Monitor()
            #expect(monitor.receiveLines(1).count == 1, "greeting")
            monitor.send(#"{"execute":"qmp_capabilities"}"# + "\n")
            #expect(monitor.receiveLines(1) == [#"{"return": {}}"#])
            return monitor
        }

        func send(_ text: String) {
            send(Array(text.utf8)[...])
        }

        func send(_ bytes: ArraySlice<UInt8>) {
            _ = bytes.withUnsafeBufferPointer { write(client, $0.baseAddress, $0.count) }
        }

        /// The next `count` lines from the monitor.
        func receiveLines(_ count: Int) -> [String] {
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            var pollDescriptor = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            while received.lazy.filter({ $0 == 0x0A }).count < count, poll(&pollDescriptor, 1, 5000) > 0 {
                let got = read(client, &buffer, buffer.count)
                guard got > 0 else { break }
                received += buffer[0..<got]
            }
            return String(decoding: received, as: UTF8.self).split(separator: "\r\n").map(String.init)
        }

        func close() async throws {
            try? await channel.close()
            Glibc.close(client)
            await runner.shutdown()
            try await group.shutdownGracefully()
        }
    }

    @Test func commandsSentTogetherAreAllAnsweredInOrder() async throws {
        let monitor = try await Monitor.negotiated()
        // One write, several commands: the ones behind a running command must not wait for
        // more input.
        monitor.send(#"{"execute":"slow","arguments":{"n":1}}{"execute":"echo","arguments":{"n":2}} {"execute":"nope"}"# + "\r\n")
        #expect(monitor.receiveLines(3) == [
            #"{"return": 1}"#, #"{"return": 2}"#,
            #"{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#,
        ])
        // Input arriving while a command runs is answered after it.
        monitor.send(#"{"execute":"slow","arguments":{"n":3}}"# + "\n")
        usleep(5_000)
        monitor.send(#"{"execute":"echo","arguments":{"n":4}}"# + "\n")
        #expect(monitor.receiveLines(2) == [#"{"return": 3}"#, #"{"return": 4}"#])
        try await monitor.close()
    }

    /// Commands cut at irregular places, some slow, the pieces sent while earlier commands
    /// run: every command is answered once, in order, and none waits for input that never
    /// comes.
    @Test func irregularlySplitInputIsAnsweredInOrder() async throws {
        let monitor = try await Monitor.negotiated()
        let count = 200
        var stream: [UInt8] = []
        for n in 0..<count {
            let command = n % 8 == 3
                ? #"{"execute":"slow","arguments":{"n":\#(n),"ms":2}}"# : #"{"execute":"echo","arguments":{"n":\#(n)}}"#
            stream += Array(command.utf8) + (n % 3 == 0 ? [] : [0x0A])
        }
        let pieceLengths = [1, 5, 17, 64, 2, 120, 31, 9, 77, 3, 45]
        let pauses: [UInt32] = [0, 300, 1500, 700, 0, 50]
        var offset = 0, piece = 0
        while offset < stream.count {
            let end = min(stream.count, offset + pieceLengths[piece % pieceLengths.count])
            monitor.send(stream[offset..<end])
            usleep(pauses[piece % pauses.count])
            offset = end
            piece += 1
        }
        let lines = monitor.receiveLines(count)
        #expect(lines == (0..<count).map { #"{"return": \#($0)}"# })
        try await monitor.close()
    }

    /// As in QEMU, commands still waiting when the client goes away are dropped; the running
    /// one finishes.
    @Test func commandsWaitingBehindARunningOneAreDroppedWhenTheClientLeaves() async throws {
        let monitor = try await Monitor.negotiated()
        monitor.send(#"{"execute":"slow","arguments":{"n":1,"ms":50}}{"execute":"echo","arguments":{"n":2}}"#)
        usleep(10_000)
        Glibc.shutdown(monitor.client, Int32(SHUT_RDWR))
        usleep(150_000)
        #expect(monitor.executor.executed.withLock { $0 } == [1])
        try await monitor.close()
    }
}
