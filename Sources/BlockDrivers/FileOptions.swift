/// Options of the `file` and `host_device` drivers (QAPI `BlockdevOptionsFile`) besides the
/// node options (`read-only`, `cache.direct`) they also use.
public struct FileOptions: Sendable, Equatable {
    /// `aio`: how QEMU submits I/O. We always use a thread pool; the others are accepted.
    public enum AIO: String, Sendable, CaseIterable {
        case threads, native
        case ioUring = "io_uring"
    }

    /// `locking`: QEMU's image locks (OFD byte locks). `auto` and `on` lock; `off` does not.
    public enum Locking: String, Sendable, CaseIterable {
        case auto, on, off
    }

    public var filename: String
    public var aio: AIO
    public var locking: Locking
    /// `__io.highwater_volume` (`file` only): the file is a fixed-size volume, like a block
    /// device. Its capacity is its current length, which only someone else changes (a
    /// controller's `truncate`, `block_resize`); writes past it fail with ENOSPC.
    public var volume: Bool

    public init(filename: String, aio: AIO = .threads, locking: Locking = .auto, volume: Bool = false) {
        self.filename = filename
        self.aio = aio
        self.locking = locking
        self.volume = volume
    }
}
