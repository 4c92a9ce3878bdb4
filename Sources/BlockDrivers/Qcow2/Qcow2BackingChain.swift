import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Detects backing chains that loop: while a thread opens an image's backing file, the
/// files of the images above it are recorded; a backing file that is one of them is refused.
enum Qcow2BackingChain {
    private struct FileIdentity: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// Files being opened as overlays, per thread.
    private static let opening = Mutex<[UInt: [FileIdentity]]>([:])

    static func open(_ backingFile: String, under image: String?, _ body: () throws(BlockError) -> BlockNode) throws(BlockError) -> BlockNode {
        let thread = UInt(pthread_self())
        let previous = opening.withLock { $0[thread] }
        let overlay = image.flatMap(identity)
        let chain = (previous ?? []) + (overlay.map { [$0] } ?? [])
        if let backing = identity(of: backingFile), chain.contains(backing) {
            throw .invalidArgument("Could not open backing file: backing chain loop: '\(backingFile)' is also an image above it")
        }
        opening.withLock { $0[thread] = chain }
        defer { opening.withLock { $0[thread] = previous } }
        return try body()
    }

    private static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}
