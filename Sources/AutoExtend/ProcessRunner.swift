import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion on a thread pool, without a shell unless asked: standard
/// input from /dev/null, standard output and error captured together (the tail is kept for
/// the report), killed when it outlives its timeout.
public struct ProcessRunner: Sendable {
    public struct Outcome: Sendable, Equatable {
        /// Exit status, or 128 + signal number when killed by a signal.
        public var status: Int32
        /// The last bytes of its output (standard output and error).
        public var output: String
        public var timedOut: Bool
    }

    private let pool: NIOThreadPool
    public var timeout: Duration

    public init(pool: NIOThreadPool, timeout: Duration) {
        self.pool = pool
        self.timeout = timeout
    }

    /// Runs `arguments[0]` (looked up in PATH) with `arguments`, the current environment plus
    /// `environment`.
    public func run(_ arguments: [String], environment: [String: String] = [:]) async throws(ExtendError) -> Outcome {
        let timeout = self.timeout
        do {
            return try await pool.runIfActive {
                try Self.runBlocking(arguments, environment: environment, timeout: timeout)
            }
        } catch let error as ExtendError {
            throw error
        } catch {
            throw ExtendError("cannot run \(arguments.first ?? ""): \(error)")
        }
    }

    private static let outputLimit = 4096

    private static func runBlocking(_ arguments: [String], environment: [String: String], timeout: Duration) throws(ExtendError) -> Outcome {
        precondition(!arguments.isEmpty)
        var pipeEnds: [Int32] = [0, 0]
        // Close-on-exec from the start (not set afterwards): a process spawned meanwhile by
        // another thread must not inherit the write end and hold our end-of-file back. Only
        // the child's dup2 copies outlive this call. (A socket pair, as Glibc's module has no
        // pipe2.)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &pipeEnds) == 0 else {
            throw ExtendError("socketpair: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        defer { close(readEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)

        var merged: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { merged[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            entry += 1
        }
        merged.merge(environment) { _, new in new }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }

        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
        close(writeEnd)
        guard spawned == 0 else {
            throw ExtendError("cannot run \(arguments[0]): \(String(cString: strerror(spawned)))")
        }

        // Read until end of file, killing the child at the deadline.
        var output: [UInt8] = []
        var timedOut = false
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero && !timedOut {
                timedOut = true
                kill(pid, SIGKILL)
            }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let waitMilliseconds = timedOut ? -1 : Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&descriptor, 1, waitMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output.append(contentsOf: chunk[0..<count])
            if output.count > outputLimit * 2 { output.removeFirst(output.count - outputLimit) }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let text = String(decoding: output.suffix(outputLimit), as: UTF8.self)
        return Outcome(status: code, output: text, timedOut: timedOut)
    }
}
