import NIOPosix

/// A loop device: its backing file is grown, then the device is told to re-read the size
/// (the `LOOP_SET_CAPACITY` ioctl, as `losetup -c` does).
public struct LoopDeviceBackend: ExtendBackend {
    /// The loop device; the node's device when nil.
    public var device: String?
    private let pool: NIOThreadPool

    public init(device: String?, pool: NIOThreadPool) {
        self.device = device
        self.pool = pool
    }

    public var summary: String { "loop device \(device ?? "(the node's device)")" }

    public func extend(_ request: ExtendRequest) async throws(ExtendError) {
        let device = self.device ?? request.path
        try await runBlocking(pool) {
            let backing = try FileGrowth.loopBacking(device: device)
            try FileGrowth.grow(path: backing.file, to: request.requestedSize + backing.offset)
            try FileGrowth.refreshLoopCapacity(device: device)
            let size = try FileGrowth.blockDeviceSize(device)
            guard size >= request.requestedSize else {
                throw ExtendError("\(device) has \(size) bytes after growing \(backing.file) (a size limit on the loop device?)")
            }
        }
    }
}
