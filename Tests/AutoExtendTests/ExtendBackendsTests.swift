import NIOPosix
import Testing
@testable import AutoExtend

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ExtendBackendsTests {
    /// A pool of the suite's own: the shared singleton may be busy with other suites running
    /// in parallel, which would delay the timeout test's start past its bound.
    static let ownPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()
    var pool: NIOThreadPool { Self.ownPool }

    func request(path: String, from: UInt64 = 1 << 20, to: UInt64 = 3 << 20) -> ExtendRequest {
        ExtendRequest(nodeName: "vol0", path: path, currentSize: from, requestedSize: to, maximumSize: 10 << 20, attempt: 2)
    }

    func temporaryDirectory() -> String {
        var template = Array("/tmp/hw-autoextend-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    func makeFile(size: off_t) -> String {
        let path = temporaryDirectory() + "/volume"
        let descriptor = open(path, O_CREAT | O_WRONLY, 0o644)
        ftruncate(descriptor, size)
        close(descriptor)
        return path
    }

    /// Removes a file of `makeFile` and its directory.
    func remove(_ path: String) {
        unlink(path)
        rmdir(String(path.dropLast("/volume".count)))
    }

    @Test func theFileBackendGrowsTheFileAndNeverShrinksIt() async throws {
        let path = makeFile(size: 1 << 20)
        defer { remove(path) }
        try await FileVolumeBackend(path: nil, pool: pool).extend(request(path: path))
        #expect(FileGrowth.size(of: path) == 3 << 20)
        try await FileVolumeBackend(path: nil, pool: pool).extend(request(path: path, to: 2 << 20))
        #expect(FileGrowth.size(of: path) == 3 << 20)
        await #expect(throws: ExtendError("open /nonexistent/x: No such file or directory")) {
            try await FileVolumeBackend(path: "/nonexistent/x", pool: pool).extend(request(path: path))
        }
    }

    @Test func theLoopBackendRefusesWhatIsNotALoopDevice() async {
        let path = makeFile(size: 1 << 20)
        defer { remove(path) }
        await #expect(throws: ExtendError("\(path) is not a block device")) {
            try await LoopDeviceBackend(device: nil, pool: pool).extend(request(path: path))
        }
    }

    @Test func theCommandBackendTellsTheCommandWhatToDo() async throws {
        let path = makeFile(size: 1 << 20)
        defer { remove(path) }
        let command = #"test "$HIGHWATER_NODE $HIGHWATER_CURRENT_SIZE $HIGHWATER_MAXIMUM_SIZE $HIGHWATER_ATTEMPT" = "vol0 1048576 10485760 2" && truncate -s "$HIGHWATER_REQUESTED_SIZE" "$HIGHWATER_PATH""#
        let backend = CommandBackend(command: command, runner: ProcessRunner(pool: pool, timeout: .seconds(10)))
        try await backend.extend(request(path: path))
        #expect(FileGrowth.size(of: path) == 3 << 20)
    }

    @Test func aFailingCommandIsReportedWithItsStatusAndOutput() async {
        let backend = CommandBackend(command: "echo trying; echo 'no free extents' >&2; exit 5", runner: ProcessRunner(pool: pool, timeout: .seconds(10)))
        await #expect(throws: ExtendError("'echo trying; echo 'no free extents' >&2; exit 5' exited with status 5: trying | no free extents")) {
            try await backend.extend(request(path: "/dev/null"))
        }
    }

    @Test func aCommandOutlivingItsTimeoutIsKilled() async {
        let backend = CommandBackend(command: "exec sleep 120", runner: ProcessRunner(pool: pool, timeout: .milliseconds(200)))
        let start = ContinuousClock.now
        await #expect(throws: ExtendError("'exec sleep 120' timed out and was killed")) {
            try await backend.extend(request(path: "/dev/null"))
        }
        // Killed long before the command would end. (Not tighter: with every suite running in
        // parallel, a process another suite spawns at the same moment can briefly hold the
        // output socket open, delaying end-of-file.)
        #expect(start.duration(to: .now) < .seconds(60))
    }

    @Test func aMissingProgramIsReported() async {
        let runner = ProcessRunner(pool: pool, timeout: .seconds(10))
        await #expect(throws: ExtendError("cannot run /nonexistent/lvextend: No such file or directory")) {
            try await LVMBackend(logicalVolume: "vg/lv", program: ["/nonexistent/lvextend"], runner: runner).extend(request(path: "/dev/vg/lv"))
        }
    }

    @Test func lvextendIsAskedForWholeMiB() {
        let backend = LVMBackend(logicalVolume: nil, program: ["lvm", "lvextend"], runner: ProcessRunner(pool: pool, timeout: .seconds(1)))
        #expect(backend.arguments(for: request(path: "/dev/vg/lv", to: (3 << 20) + 1))
            == ["lvm", "lvextend", "--autobackup", "n", "--size", "4m", "/dev/vg/lv"])
    }
}
