import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An open file or device and the POSIX I/O that `file` and `host_device` share: loops
/// over short and interrupted transfers, fallocate, SEEK_DATA/SEEK_HOLE, image locks,
/// discard accounting.
final class PosixFile: Sendable {
    let path: String
    let descriptor: Int32
    let isReadOnly: Bool
    let isDirect: Bool
    /// Request alignment the core must honour (1 unless O_DIRECT).
    let alignment: UInt32
    let lock: ImageLock?
    private let closed = Atomic<Bool>(false)
    private let discardsSucceeded = Atomic<UInt64>(0)
    private let discardsFailed = Atomic<UInt64>(0)
    private let discardBytesSucceeded = Atomic<UInt64>(0)

    /// Opens `path` with QEMU's error text on failure ("Could not open '/x': No such file
    /// or directory"), then lets `validate` look at the file type before anything else.
    init(path: String, readOnly: Bool, direct: Bool, locking: Bool, validate: (stat) throws(BlockError) -> Void) throws(BlockError) {
        var flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        if direct { flags |= Linux.O_DIRECT }
        let fd = Glibc.open(path, flags)
        guard fd >= 0 else { throw .system(errno: errno, operation: "Could not open '\(path)'") }
        do throws(BlockError) {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw BlockError.system(errno: errno, operation: "Could not stat '\(path)'") }
            try validate(info)
            self.alignment = direct ? try Self.directAlignment(fd: fd, info: info) : 1
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.path = path
        self.descriptor = fd
        self.isReadOnly = readOnly
        self.isDirect = direct
        self.lock = locking ? ImageLock(descriptor: fd) : nil
    }

    func close() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        Glibc.close(descriptor)
    }

    func status() throws(BlockError) -> stat {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .system(errno: errno, operation: "fstat") }
        return info
    }

    // MARK: Transfers

    /// Reads fully; what lies past the end of the file reads as zeroes.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        guard needsBounce(buffer.baseAddress) else { return try readFully(at: offset, into: buffer) }
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count, alignment: Int(alignment))
        defer { bounce.deallocate() }
        try readFully(at: offset, into: bounce)
        buffer.copyMemory(from: UnsafeRawBufferPointer(bounce))
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(BlockError) {
        guard needsBounce(buffer.baseAddress) else { return try writeFully(at: offset, from: buffer) }
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count, alignment: Int(alignment))
        defer { bounce.deallocate() }
        bounce.copyMemory(from: buffer)
        try writeFully(at: offset, from: UnsafeRawBufferPointer(bounce))
    }

    /// O_DIRECT also wants the memory aligned; the core only aligns offsets and lengths,
    /// and callers' buffers (NIO's, arrays) can lie anywhere.
    @inline(__always)
    private func needsBounce(_ address: UnsafeRawPointer?) -> Bool {
        guard isDirect, let address else { return false }
        return UInt(bitPattern: address) % UInt(alignment) != 0
    }

    private func readFully(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(errno: errno, operation: "read")
            }
            // A short read from a file or device means the end: continuing at an unaligned
            // offset would fail under O_DIRECT, so fill the rest here.
            if count < buffer.count - done {
                UnsafeMutableRawBufferPointer(rebasing: buffer[(done + count)...]).initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            done += count
        }
    }

    private func writeFully(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(BlockError) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let count = pwrite(descriptor, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.writeError(errno)
            }
            if count == 0 { throw .noSpace }
            done += count
        }
    }

    /// Writes zeroes with plain writes (the fallback when nothing faster works).
    func writeZeroBuffers(at offset: UInt64, length: UInt64) throws(BlockError) {
        try ZeroFill.write(at: offset, length: length) { offset, zeroes throws(BlockError) in
            try write(at: offset, from: zeroes)
        }
    }

    func flush() throws(BlockError) {
        while fdatasync(descriptor) != 0 {
            if errno != EINTR { throw .system(errno: errno, operation: "flush") }
        }
    }

    func truncate(to size: UInt64) throws(BlockError) {
        while ftruncate(descriptor, off_t(size)) != 0 {
            if errno != EINTR { throw Self.writeError(errno) }
        }
    }

    // MARK: fallocate and ioctl

    /// fallocate(2); returns false when the file system or device does not support the mode.
    func fallocate(mode: Int32, offset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        while Linux.fallocate(descriptor, mode, Int64(offset), Int64(length)) != 0 {
            switch errno {
            case EINTR: continue
            case EOPNOTSUPP, ENOSYS, EINVAL, ENODEV: return false
            case let error: throw Self.writeError(error)
            }
        }
        return true
    }

    /// An ioctl taking an `(offset, length)` range (BLKDISCARD, BLKZEROOUT); false when unsupported.
    func rangeIoctl(_ request: UInt, offset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        var range: (UInt64, UInt64) = (offset, length)
        while ioctl(descriptor, request, &range) != 0 {
            switch errno {
            case EINTR: continue
            case EOPNOTSUPP, ENOTTY, EINVAL, ENODEV: return false
            case let error: throw Self.writeError(error)
            }
        }
        return true
    }

    /// Size of a block device (BLKGETSIZE64) or, for anything else, the end seek position.
    func deviceSize(isBlockDevice: Bool) throws(BlockError) -> UInt64 {
        if isBlockDevice {
            var size: UInt64 = 0
            guard ioctl(descriptor, Linux.BLKGETSIZE64, &size) == 0 else { throw .system(errno: errno, operation: "BLKGETSIZE64") }
            return size
        }
        let end = lseek(descriptor, 0, SEEK_END)
        guard end >= 0 else { throw .system(errno: errno, operation: "lseek") }
        return UInt64(end)
    }

    // MARK: Discard

    /// Runs a discard and counts it for `driver-specific` statistics, as QEMU does: every
    /// attempt that did not succeed (unsupported included) counts as failed.
    func accountDiscard(length: UInt64, _ body: () throws(BlockError) -> Bool) throws(BlockError) {
        let succeeded: Bool
        do {
            succeeded = try body()
        } catch {
            discardsFailed.add(1, ordering: .relaxed)
            throw error
        }
        if succeeded {
            discardsSucceeded.add(1, ordering: .relaxed)
            discardBytesSucceeded.add(length, ordering: .relaxed)
        } else {
            discardsFailed.add(1, ordering: .relaxed)
        }
    }

    func discardStatistics(driver: String) -> BlockDriverSpecificStatistics {
        BlockDriverSpecificStatistics(
            driver: driver,
            discardOperationsSucceeded: discardsSucceeded.load(ordering: .relaxed),
            discardOperationsFailed: discardsFailed.load(ordering: .relaxed),
            discardBytesSucceeded: discardBytesSucceeded.load(ordering: .relaxed))
    }

    // MARK: Allocation

    /// Allocation status from SEEK_DATA/SEEK_HOLE: one extent starting at `offset`, data or
    /// hole. Without support (or on devices) everything is data.
    func blockStatus(at offset: UInt64, length: UInt64) -> [BlockExtent] {
        let end = offset + length
        let data = lseek(descriptor, off_t(offset), Linux.SEEK_DATA)
        if data < 0 {
            // ENXIO: no data from here to the end of the file.
            if errno == ENXIO { return [BlockExtent(length: length, isHole: true, isZero: true)] }
            return [BlockExtent(length: length, isHole: false, isZero: false)]
        }
        if UInt64(data) > offset {
            return [BlockExtent(length: min(UInt64(data), end) - offset, isHole: true, isZero: true)]
        }
        let hole = lseek(descriptor, off_t(offset), Linux.SEEK_HOLE)
        let dataEnd = hole > off_t(offset) ? min(UInt64(hole), end) : end
        return [BlockExtent(length: dataEnd - offset, isHole: false, isZero: false)]
    }

    func allocatedBytes() -> UInt64? {
        (try? status()).map { UInt64($0.st_blocks) * 512 }
    }

    // MARK: Helpers

    /// Quota and file-size limits look like a full disk to the guest, as in QEMU.
    static func writeError(_ error: Int32) -> BlockError {
        switch error {
        case ENOSPC, EDQUOT, EFBIG: .noSpace
        default: .system(errno: error, operation: "write")
        }
    }

    /// The O_DIRECT request alignment: the logical sector size for block devices; for files
    /// the smallest size a read at offset 0 accepts (QEMU's probe), 4096 if even 1 passes.
    private static func directAlignment(fd: Int32, info: stat) throws(BlockError) -> UInt32 {
        if (info.st_mode & S_IFMT) == S_IFBLK {
            var sectorSize: Int32 = 0
            if ioctl(fd, Linux.BLKSSZGET, &sectorSize) == 0, sectorSize > 0 { return UInt32(sectorSize) }
        }
        let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { probe.deallocate() }
        for size in [1, 512, 1024, 2048, 4096] {
            if pread(fd, probe.baseAddress, size, 0) >= 0 || errno != EINVAL {
                return size == 1 ? 4096 : UInt32(size)
            }
        }
        throw .invalidArgument("Could not find working O_DIRECT alignment")
    }
}

/// Linux interfaces the Glibc module does not export.
enum Linux {
    static let O_DIRECT: Int32 = 0o40000
    static let SEEK_DATA: Int32 = 3
    static let SEEK_HOLE: Int32 = 4
    static let FALLOC_FL_KEEP_SIZE: Int32 = 0x01
    static let FALLOC_FL_PUNCH_HOLE: Int32 = 0x02
    static let FALLOC_FL_ZERO_RANGE: Int32 = 0x10
    static let F_OFD_GETLK: Int32 = 36
    static let F_OFD_SETLK: Int32 = 37
    static let BLKSSZGET: UInt = 0x1268
    static let BLKDISCARD: UInt = 0x1277
    static let BLKZEROOUT: UInt = 0x127F
    static let BLKGETSIZE64: UInt = 0x8008_1272

    /// glibc's fallocate is a GNU extension Swift does not import; look it up once.
    static let fallocate: @convention(c) (Int32, Int32, Int64, Int64) -> Int32 = {
        guard let symbol = dlsym(nil, "fallocate64") else { fatalError("glibc without fallocate64") }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32, Int64, Int64) -> Int32).self)
    }()
}
