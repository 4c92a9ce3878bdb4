import AutoExtend

/// What `highwater serve` sets up: where, how big the disk is, and how its volume grows.
///
/// The defaults suit a first look on a laptop: a 10 GiB thin disk on a 256 MiB volume that
/// grows by 256 MiB chunks once less than half a chunk (128 MiB) is free. Half a chunk of
/// head room is far more than a full-speed sequential writer covers while the in-process
/// controller grows the file (about a millisecond), so such a writer does not stall; if one
/// ever does, its writes are held, not failed.
public struct ServeOptions: Sendable, Equatable {
    /// The folder for the disk and the sockets (relative to the working directory or absolute).
    public var directory: String
    /// The virtual size of a disk created on the first run.
    public var diskSize: UInt64
    /// The volume's size on the first run (an existing, larger file is kept as it is).
    public var volumeSize: UInt64
    /// Bytes added per extension.
    public var chunk: UInt64
    /// Percent of the last chunk used before extending (see `ExtendPolicy`).
    public var utilizationPercent: UInt64

    public static let defaultDirectory = "highwater-data"
    public static let defaultDiskSize: UInt64 = 10 << 30
    public static let defaultVolumeSize: UInt64 = 256 << 20
    public static let defaultChunk: UInt64 = 256 << 20
    public static let defaultUtilizationPercent: UInt64 = 50

    public init(
        directory: String = defaultDirectory, diskSize: UInt64 = defaultDiskSize, volumeSize: UInt64 = defaultVolumeSize,
        chunk: UInt64 = defaultChunk, utilizationPercent: UInt64 = defaultUtilizationPercent
    ) {
        self.directory = directory
        self.diskSize = diskSize
        self.volumeSize = volumeSize
        self.chunk = chunk
        self.utilizationPercent = utilizationPercent
    }

    /// The controller's policy for a disk of `virtualSize` bytes: the maximum is the one
    /// the controller derives from the qcow2 image on the volume.
    public func policy(virtualSize: UInt64) -> ExtendPolicy {
        ExtendPolicy(chunk: chunk, utilizationPercent: utilizationPercent, maximum: ExtendPolicy.qcow2Maximum(virtualSize: virtualSize))
    }
}
