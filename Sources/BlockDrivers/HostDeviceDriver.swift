import BlockCore

#if canImport(Glibc)
import Glibc
#endif

/// The `host_device` driver: a block or character device. Its size is whatever the device
/// says now (an LV may grow underneath); writes past it fail with ENOSPC.
public final class HostDeviceDriver: PosixFileDriver {
    let file: PosixFile
    private let isBlockDevice: Bool

    public init(options: FileOptions, node: BlockNodeOptions) throws(BlockError) {
        let filename = options.filename
        var isBlockDevice = false
        file = try PosixFile(
            path: filename, readOnly: node.readOnly, direct: node.cacheDirect, locking: options.locking != .off
        ) { (info: stat) throws(BlockError) in
            let type = info.st_mode & S_IFMT
            guard type == S_IFBLK || type == S_IFCHR else {
                throw .invalidArgument("'host_device' driver requires '\(filename)' to be either a character or block device")
            }
            isBlockDevice = type == S_IFBLK
        }
        self.isBlockDevice = isBlockDevice
        do {
            try Self.checkAIO(options, node: node)
        } catch {
            file.close()
            throw error
        }
    }

    public var driverName: String { "host_device" }

    public var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: file.alignment, growable: false, resizable: true)
    }

    public func currentSize() throws(BlockError) -> UInt64 {
        try file.deviceSize(isBlockDevice: isBlockDevice)
    }

    /// Unmapping zeroes when allowed, else the device's own zeroing (BLKZEROOUT), else
    /// fallocate, else plain writes.
    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        if flags.contains(.mayUnmap),
           try file.fallocate(mode: Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length) {
            return
        }
        if isBlockDevice, try file.rangeIoctl(Linux.BLKZEROOUT, offset: offset, length: length) { return }
        if try file.fallocate(mode: Linux.FALLOC_FL_ZERO_RANGE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length) { return }
        if flags.contains(.fastZero) { throw .notSupported("fast zeroing not supported") }
        try file.writeZeroBuffers(at: offset, length: length)
    }

    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try file.accountDiscard(length: length) { () throws(BlockError) -> Bool in
            if isBlockDevice, try file.rangeIoctl(Linux.BLKDISCARD, offset: offset, length: length) { return true }
            return try file.fallocate(mode: Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length)
        }
    }

    /// Devices cannot be resized from here; shrinking is accepted and changes nothing, as in QEMU.
    public func truncate(to size: UInt64) throws(BlockError) {
        if size > (try currentSize()) { throw .invalidArgument("Cannot grow device files") }
    }
}
