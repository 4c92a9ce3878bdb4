import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The `file` driver: a regular file that grows when written past its end — unless it is a
/// volume (`__io.highwater_volume`): then it never grows by itself, and the core re-reads its
/// length before failing a request past the end, as for `host_device`.
public final class FileDriver: PosixFileDriver {
    let file: PosixFile
    private let isVolume: Bool
    /// FALLOC_FL_ZERO_RANGE failed once (tmpfs, for one): not tried again.
    private let zeroRangeUnsupported = Atomic<Bool>(false)

    /// Opens `options.filename` read-only or read-write and with O_DIRECT as the node says.
    public init(options: FileOptions, node: BlockNodeOptions) throws(BlockError) {
        let filename = options.filename
        isVolume = options.volume
        file = try PosixFile(
            path: filename, readOnly: node.readOnly, direct: node.cacheDirect, locking: options.locking != .off
        ) { (info: stat) throws(BlockError) in
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw .invalidArgument("'file' driver requires '\(filename)' to be a regular file")
            }
        }
        do {
            try Self.checkAIO(options, node: node)
        } catch {
            file.close()
            throw error
        }
    }

    public var driverName: String { "file" }

    public var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: file.alignment, growable: !isVolume, resizable: true)
    }

    public func currentSize() throws(BlockError) -> UInt64 {
        UInt64(try file.status().st_size)
    }

    /// Deallocates when allowed (the range then reads as zeroes), else zeroes in place;
    /// plain writes of zeroes when the file system can do neither.
    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        if flags.contains(.mayUnmap),
           try file.fallocate(mode: Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length) {
            // Punching keeps the size: a range past the end still has to grow the file.
            let size = try currentSize()
            if offset + length > size { try file.truncate(to: offset + length) }
            return
        }
        if try zeroWithoutWriting(at: offset, length: length) { return }
        if flags.contains(.fastZero) { throw .notSupported("fast zeroing not supported") }
        try file.writeZeroBuffers(at: offset, length: length)
    }

    /// Zeroes a range, allocated, without writing zeroes, QEMU's way: FALLOC_FL_ZERO_RANGE;
    /// where the file system lacks it (tmpfs), a hole punched and allocated again; past the
    /// end of the file, an allocation alone. False when none of these works.
    private func zeroWithoutWriting(at offset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        if !zeroRangeUnsupported.load(ordering: .relaxed) {
            if try file.fallocate(mode: Linux.FALLOC_FL_ZERO_RANGE, offset: offset, length: length) { return true }
            zeroRangeUnsupported.store(true, ordering: .relaxed)
        }
        if try file.fallocate(mode: Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length) {
            return try file.fallocate(mode: 0, offset: offset, length: length)
        }
        guard offset >= (try currentSize()) else { return false }
        return try file.fallocate(mode: 0, offset: offset, length: length)
    }

    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try file.accountDiscard(length: length) { () throws(BlockError) -> Bool in
            try file.fallocate(mode: Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset: offset, length: length)
        }
    }

    public func truncate(to size: UInt64) throws(BlockError) {
        try file.truncate(to: size)
    }
}
