import NIOCore
import NIOPosix
import Testing

@testable import HighWaterDaemon

#if canImport(Glibc)
import Glibc
#endif

@Suite struct MonitorOutputTests {
    /// Several threads write numbered lines while the peer does not read: the socket fills,
    /// later lines go through the channel. Every line must arrive whole, each thread's in
    /// the order it sent them (a direct write overtaking a queued one would break that).
    @Test func linesKeepTheirOrderWhenTheSocketFillsUp() async throws {
        var pair: [CInt] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        var small: CInt = 4096
        setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<CInt>.size))
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ClientBootstrap(group: group).withConnectedSocket(dup(pair[0])).get()
        let output = MonitorOutput(channel: channel, descriptor: pair[0])

        let threads = 4, lines = 300
        let padding = String(repeating: "x", count: 200)
        // The peer reads slowly while the threads write: room appears in the socket while
        // earlier lines still wait in the channel.
        let peer = pair[1]
        let reader = Task.detached { () -> [UInt8] in
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1024)
            var newlines = 0
            while newlines < threads * lines {
                let count = read(peer, &buffer, buffer.count)
                guard count > 0 else { break }
                received += buffer[0..<count]
                newlines += buffer[0..<count].lazy.filter { $0 == 0x0A }.count
                usleep(50)
            }
            return received
        }
        await withTaskGroup(of: Void.self) { tasks in
            for thread in 0..<threads {
                tasks.addTask {
                    for line in 0..<lines { output.send(Array("\(thread) \(line) \(padding)\n".utf8)) }
                }
            }
        }
        let received = await reader.value
        var next = [Int](repeating: 0, count: threads)
        for line in String(decoding: received, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            try #require(fields.count == 3 && fields[2] == Substring(padding), "a line was cut or mixed: \(line.prefix(40))")
            let thread = Int(fields[0])!, number = Int(fields[1])!
            #expect(number == next[thread], "thread \(thread): line \(number) after \(next[thread] - 1)")
            next[thread] = number + 1
        }
        #expect(next == [Int](repeating: lines, count: threads))
        output.close()
        try await channel.close()
        close(peer)
        try await group.shutdownGracefully()
    }
}
