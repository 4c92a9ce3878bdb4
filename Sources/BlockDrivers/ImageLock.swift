import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// QEMU's image locking, so that QEMU's tools and we see each other's locks: shared OFD
/// locks on byte 100+n for each permission n the node's users hold and on byte 200+n for
/// each they do not share. Another process conflicts when it holds the byte opposite to one
/// we want.
final class ImageLock: Sendable {
    private static let requiredBase: Int64 = 100
    private static let unsharedBase: Int64 = 200

    private let descriptor: Int32
    /// What is locked now: (required, unshared).
    private let held = Mutex<(BlockPermissions, BlockPermissions)>(([], []))

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Locks for `required`/`shared`, then checks other processes' locks; on conflict
    /// restores the previous locks and throws QEMU's text (`Failed to get "write" lock`).
    func apply(required: BlockPermissions, shared: BlockPermissions) throws(BlockError) {
        let unshared = BlockPermissions.all.subtracting(shared)
        try held.withLock { (held: inout (BlockPermissions, BlockPermissions)) throws(BlockError) in
            let previous = held
            do throws(BlockError) {
                try setBytes(required: required, unshared: unshared, from: held)
                held = (required, unshared)
                try checkOthers(required: required, unshared: unshared)
            } catch {
                try? setBytes(required: previous.0, unshared: previous.1, from: held)
                held = previous
                throw error
            }
        }
    }

    private func setBytes(required: BlockPermissions, unshared: BlockPermissions, from current: (BlockPermissions, BlockPermissions)) throws(BlockError) {
        for (permission, bit, _) in BlockPermissions.named {
            for (base, wanted, have) in [
                (Self.requiredBase, required, current.0), (Self.unsharedBase, unshared, current.1),
            ] where wanted.contains(permission) != have.contains(permission) {
                let byte = base + Int64(bit)
                var lock = Self.lock(type: wanted.contains(permission) ? F_RDLCK : F_UNLCK, byte: byte)
                guard fcntl(descriptor, Linux.F_OFD_SETLK, &lock) == 0 else {
                    throw .permissionConflict("Failed to lock byte \(byte)")
                }
            }
        }
    }

    private func checkOthers(required: BlockPermissions, unshared: BlockPermissions) throws(BlockError) {
        for (permission, bit, name) in BlockPermissions.named where required.contains(permission) {
            if try isHeldByOthers(Self.unsharedBase + Int64(bit)) {
                throw .permissionConflict("Failed to get \"\(name)\" lock")
            }
        }
        for (permission, bit, name) in BlockPermissions.named where unshared.contains(permission) {
            if try isHeldByOthers(Self.requiredBase + Int64(bit)) {
                throw .permissionConflict("Failed to get shared \"\(name)\" lock")
            }
        }
    }

    /// Whether another open file description holds a lock on `byte` (a write lock would conflict).
    private func isHeldByOthers(_ byte: Int64) throws(BlockError) -> Bool {
        var lock = Self.lock(type: F_WRLCK, byte: byte)
        guard fcntl(descriptor, Linux.F_OFD_GETLK, &lock) == 0 else {
            throw .permissionConflict("Failed to get lock byte \(byte)")
        }
        return lock.l_type != Int16(F_UNLCK)
    }

    private static func lock(type: Int32, byte: Int64) -> flock {
        var lock = flock()
        lock.l_type = Int16(type)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(byte)
        lock.l_len = 1
        return lock
    }
}
