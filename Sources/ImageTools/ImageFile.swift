import BlockCore
import BlockDrivers

#if canImport(Glibc)
import Glibc
#endif

/// An image file opened through the block layer's `file` driver, so that qemu-img's image
/// locks apply: a file a daemon writes to cannot be inspected or recreated by accident.
final class ImageFile {
    let path: String
    private let node: BlockNode
    private let token: BlockClaimToken

    /// Opens an existing file, taking the locks for reading (`writable` false; others may
    /// keep reading but not write) or for writing and resizing.
    init(path: String, writable: Bool) throws(BlockError) {
        self.path = path
        let driver = try FileDriver(options: FileOptions(filename: path), node: BlockNodeOptions(nodeName: "", readOnly: !writable))
        do {
            node = try BlockNode(options: BlockNodeOptions(nodeName: "", readOnly: !writable), driver: driver, eventSink: SilentEventSink())
            let required: BlockPermissions = writable ? [.consistentRead, .write, .resize] : [.consistentRead]
            let shared: BlockPermissions = writable ? [.consistentRead, .writeUnchanged] : [.consistentRead, .writeUnchanged, .graphMod]
            token = try node.claim(BlockPermissionClaim(holder: "qemu-img", role: "root", required: required, shared: shared))
        } catch {
            driver.close()
            throw error
        }
    }

    /// Creates the file if needed (mode 0644, as QEMU), then opens it for writing.
    static func create(path: String) throws(BlockError) -> ImageFile {
        let descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .system(errno: errno, operation: "Could not create '\(path)'") }
        Glibc.close(descriptor)
        return try ImageFile(path: path, writable: true)
    }

    var size: UInt64 { node.size }

    /// Bytes the file occupies on disk.
    var allocatedSize: UInt64? { node.driver.allocatedSize() }

    /// Reads `count` bytes; what lies past the end of the file reads as zeroes.
    func read(at offset: UInt64, count: Int) throws(BlockError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let available = offset < size ? Int(min(UInt64(count), size - offset)) : 0
        guard available > 0 else { return bytes }
        let result = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(BlockError) in
                try node.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<available]))
            }
        }
        try result.get()
        return bytes
    }

    /// Reads big-endian 64-bit entries (tables).
    func readEntries(at offset: UInt64, count: Int) throws(BlockError) -> [UInt64] {
        let bytes = try read(at: offset, count: count * 8)
        let reader = Qcow2ByteReader(bytes)
        return (0..<count).map { reader.u64($0 * 8) }
    }

    func write(at offset: UInt64, _ bytes: [UInt8]) throws(BlockError) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(BlockError) in try node.write(at: offset, from: buffer) }
        }
        try result.get()
    }

    /// Resizes the file (our own claim already holds the resize permission).
    func truncate(to size: UInt64) throws(BlockError) {
        try node.driver.truncate(to: size)
        try node.refreshSize()
    }

    func flush() throws(BlockError) {
        try node.flush()
    }

    func close() {
        node.release(token)
        node.driver.close()
    }
}

/// Events nobody listens to (a tool has no monitor).
private struct SilentEventSink: BlockEventSink {
    func blockEvent(_ event: BlockEvent) {}
}
