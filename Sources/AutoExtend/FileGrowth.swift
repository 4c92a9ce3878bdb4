#if canImport(Glibc)
import Glibc
#endif

/// Growing regular files and loop devices, with system calls only.
enum FileGrowth {
    /// Makes the regular file at `path` at least `size` bytes long (never shrinks it).
    static func grow(path: String, to size: UInt64) throws(ExtendError) {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(path)") }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw failure("stat \(path)") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ExtendError("\(path) is not a regular file") }
        guard UInt64(info.st_size) < size else { return }
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw failure("ftruncate \(path) to \(size)") }
    }

    /// The backing file and offset of the loop device at `device` (from sysfs).
    static func loopBacking(device: String) throws(ExtendError) -> (file: String, offset: UInt64) {
        var info = stat()
        guard stat(device, &info) == 0 else { throw failure("stat \(device)") }
        guard info.st_mode & S_IFMT == S_IFBLK else { throw ExtendError("\(device) is not a block device") }
        let number = "\(major(info.st_rdev)):\(minor(info.st_rdev))"
        let directory = "/sys/dev/block/\(number)/loop"
        guard var file = readText("\(directory)/backing_file") else {
            throw ExtendError("\(device) is not a bound loop device (no \(directory)/backing_file)")
        }
        if file.hasSuffix(" (deleted)") { throw ExtendError("the backing file of \(device) was deleted: \(file)") }
        file = String(file.drop { $0 == " " })
        let offset = readText("\(directory)/offset").flatMap { UInt64($0) } ?? 0
        return (file, offset)
    }

    /// Tells the loop driver to re-read its backing file's size (`losetup -c`).
    static func refreshLoopCapacity(device: String) throws(ExtendError) {
        let descriptor = open(device, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(device)") }
        defer { close(descriptor) }
        let loopSetCapacity: UInt = 0x4C07
        guard ioctl(descriptor, loopSetCapacity, 0) == 0 else { throw failure("LOOP_SET_CAPACITY on \(device)") }
    }

    /// The size of the regular file or block device at `path`, nil when it is neither or
    /// cannot be looked at from here.
    static func size(of path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return UInt64(info.st_size)
        case S_IFBLK: return try? blockDeviceSize(path)
        default: return nil
        }
    }

    /// The size the kernel reports for the block device at `device`.
    static func blockDeviceSize(_ device: String) throws(ExtendError) -> UInt64 {
        let descriptor = open(device, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open \(device)") }
        defer { close(descriptor) }
        let end = lseek(descriptor, 0, SEEK_END)
        guard end >= 0 else { throw failure("seek to the end of \(device)") }
        return UInt64(end)
    }

    /// A small sysfs file's text without its final newline.
    private static func readText(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        var text = String(decoding: bytes[0..<count], as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        return text
    }

    private static func failure(_ what: String) -> ExtendError {
        ExtendError("\(what): \(String(cString: strerror(errno)))")
    }

    private static func major(_ device: dev_t) -> UInt64 {
        UInt64((device >> 8) & 0xfff) | UInt64((device >> 32) & ~0xfff)
    }

    private static func minor(_ device: dev_t) -> UInt64 {
        UInt64(device & 0xff) | UInt64((device >> 12) & ~0xff)
    }
}
