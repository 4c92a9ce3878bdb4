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
