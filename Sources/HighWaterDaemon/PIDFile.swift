#if canImport(Glibc)
import Glibc
#endif

/// The `--pidfile`: written once startup is complete, locked so that a second daemon with the
/// same path fails, removed on exit — as qemu-storage-daemon does.
final class PIDFile: Sendable {
    let path: String
    private let descriptor: Int32

    /// Creates, locks and writes the file. Errors carry qemu-storage-daemon's texts.
    init(path: String) throws(DaemonStartupError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw DaemonStartupError("cannot create PID file: Cannot open pid file: \(String(cString: strerror(errno)))")
        }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_SETLK, &lock) == 0 else {
            let error = errno
            close(fd)
            throw DaemonStartupError("cannot create PID file: Cannot lock pid file: \(String(cString: strerror(error)))")
        }
        let text = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0, text.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == text.count else {
            let error = errno
            close(fd)
            throw DaemonStartupError("cannot create PID file: Failed to write pid file: \(String(cString: strerror(error)))")
        }
        descriptor = fd
    }

    /// Unlinks and unlocks the file.
    func remove() {
        unlink(path)
        close(descriptor)
    }
}
