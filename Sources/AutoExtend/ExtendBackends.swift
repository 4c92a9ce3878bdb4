import NIOPosix

/// A file volume (`driver=file` with `__io.highwater_volume=on`, or any regular file): the
/// file is grown with `ftruncate`.
public struct FileVolumeBackend: ExtendBackend {
    /// The file to grow; the node's file when nil.
    public var path: String?
    private let pool: NIOThreadPool

    public init(path: String?, pool: NIOThreadPool) {
        self.path = path
        self.pool = pool
    }

    public var summary: String { "file volume \(path ?? "(the node's file)")" }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let path = self.path ?? request.path
        try await runBlocking(pool) {
            try FileGrowth.grow(path: path, to: request.requestedSize)
        }
    }
}

/// A loop device: its backing file is grown, then the device is told to re-read the size
/// (the `LOOP_SET_CAPACITY` ioctl, as `losetup -c` does).
public struct LoopDeviceBackend: ExtendBackend {
    /// The loop device; the node's device when nil.
    public var device: String?
    private let pool: NIOThreadPool

    public init(device: String?, pool: NIOThreadPool) {
        self.device = device
        self.pool = pool
    }

    public var summary: String { "loop device \(device ?? "(the node's device)")" }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let device = self.device ?? request.path
        try await runBlocking(pool) {
            let backing = try FileGrowth.loopBacking(device: device)
            try FileGrowth.grow(path: backing.file, to: request.requestedSize + backing.offset)
            try FileGrowth.refreshLoopCapacity(device: device)
            let size = try FileGrowth.blockDeviceSize(device)
            guard size >= request.requestedSize else {
                throw ExtendError("\(device) has \(size) bytes after growing \(backing.file) (a size limit on the loop device?)")
            }
        }
    }
}

/// An LVM logical volume, grown with `lvextend --size <MiB>m <lv>` (LVM rounds up to whole
/// extents).
public struct LVMBackend: ExtendBackend {
    /// The logical volume (`vg/lv` or its device path); the node's device when nil.
    public var logicalVolume: String?
    /// The program and leading arguments, e.g. `["lvextend"]` or `["lvm", "lvextend"]`.
    public var program: [String]
    private let runner: ProcessRunner

    public init(logicalVolume: String?, program: [String] = ["lvextend"], runner: ProcessRunner) {
        self.logicalVolume = logicalVolume
        self.program = program
        self.runner = runner
    }

    public var summary: String { "lvextend \(logicalVolume ?? "(the node's device)")" }

    /// The command line for one request.
    public func arguments(for request: ExtendRequest) -> [String] {
        let mebibytes = (request.requestedSize + (1 << 20) - 1) >> 20
        return program + ["--autobackup", "n", "--size", "\(mebibytes)m", logicalVolume ?? request.path]
    }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let arguments = arguments(for: request)
        let outcome = try await runner.run(arguments)
        try CommandBackend.check(outcome, commandLine: arguments.joined(separator: " "))
    }
}

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

/// Runs short blocking system calls off the cooperative pool.
func runBlocking(_ pool: NIOThreadPool, _ work: @escaping @Sendable () throws -> Void) async throws(ExtendError) {
    do {
        try await pool.runIfActive(work)
    } catch let error as ExtendError {
        throw error
    } catch {
        throw ExtendError("\(error)")
    }
}
