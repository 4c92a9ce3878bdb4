/// Any command, run with `/bin/sh -c`, told what to do in its environment:
///
/// | variable | value |
/// |---|---|
/// | `HIGHWATER_NODE` | the node name |
/// | `HIGHWATER_PATH` | the node's file or device |
/// | `HIGHWATER_CURRENT_SIZE` | its size now, in bytes |
/// | `HIGHWATER_REQUESTED_SIZE` | the size to grow it to, in bytes (at least) |
/// | `HIGHWATER_MAXIMUM_SIZE` | the size it must never exceed |
/// | `HIGHWATER_ATTEMPT` | 1, or the number of the retry after failures |
///
/// Exit status 0 means done; anything else (or outliving the timeout) is a failure,
/// reported with the tail of its output and retried.
public struct CommandBackend: ExtendBackend {
    public var command: String
    private let runner: ProcessRunner

    public init(command: String, runner: ProcessRunner) {
        self.command = command
        self.runner = runner
    }

    public var summary: String { "command \(command)" }

    public static func environment(for request: ExtendRequest) -> [String: String] {
        [
            "HIGHWATER_NODE": request.nodeName,
            "HIGHWATER_PATH": request.path,
            "HIGHWATER_CURRENT_SIZE": String(request.currentSize),
            "HIGHWATER_REQUESTED_SIZE": String(request.requestedSize),
            "HIGHWATER_MAXIMUM_SIZE": String(request.maximumSize),
            "HIGHWATER_ATTEMPT": String(request.attempt),
        ]
    }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let outcome = try await runner.run(["/bin/sh", "-c", command], environment: Self.environment(for: request))
        try Self.check(outcome, commandLine: command)
    }

    static func check(_ outcome: ProcessRunner.Outcome, commandLine: String) throws(ExtendError) {
        guard outcome.timedOut || outcome.status != 0 else { return }
        let how = outcome.timedOut ? "timed out and was killed" : "exited with status \(outcome.status)"
        let output = outcome.output.split(separator: "\n").suffix(5).joined(separator: " | ")
        throw ExtendError("'\(commandLine)' \(how)" + (output.isEmpty ? "" : ": \(output)"))
    }
}
