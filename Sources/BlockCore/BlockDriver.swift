/// The one contract every block driver implements (QEMU's BlockDriver, nbdkit's plugin).
///
/// Drivers are synchronous and thread-safe: the server calls them from several I/O threads
/// at once. The core (`BlockNode`) has already validated every request before a driver sees
/// it: the range lies inside the node (or the node is growable), the node is writable for
/// write-type requests, and offsets and lengths are multiples of `requestAlignment`. A driver
/// that stacks on a child forwards to the child's `BlockNode`, never to the child's driver,
/// so that the child's own checks, statistics and write threshold apply.
public protocol BlockDriver: AnyObject, Sendable {
    /// The driver name as QMP reports it (`file`, `raw`, `null-co`, ...).
    var driverName: String { get }

    /// Current size in bytes. Drivers whose size can change underneath (host_device) re-read it.
    func currentSize() throws(BlockError) -> UInt64

    /// What the core may expect of this driver.
    var capabilities: BlockDriverCapabilities { get }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError)
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError)
    func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError)
    /// Only called when the node was opened with `discard=unmap`.
    func discard(at offset: UInt64, length: UInt64) throws(BlockError)
    func flush() throws(BlockError)
    /// Allocation status of a prefix of the range (at least one extent, not past `length`).
    func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent]
    func truncate(to size: UInt64) throws(BlockError)
    /// Called once when the node is removed from the graph.
    func close()

    /// Children in the graph, with the role each plays (`file`, `backing`).
    var children: [(role: String, node: BlockNode)] { get }

    /// A protocol driver reaches storage itself (file, host_device, null-co); the others
    /// (raw, qcow2) stack on children. Only a protocol child's filename can stand for its parent.
    var isProtocol: Bool { get }

    // MARK: Reporting (`query-named-block-nodes`, `query-blockstats`)

    /// The filename that fully describes the node (`/x`, `null-co://`), or nil when only
    /// its options do (QEMU then shows `json:{...}`).
    var exactFilename: String? { get }
    /// The options that matter for what the node shows (QEMU's "strong" options), `driver`
    /// and children included, in QEMU's order.
    var optionsDescription: BlockOptionObject { get }
    /// Bytes allocated on the host (`actual-size`), nil when unknown.
    func allocatedSize() -> UInt64?
    /// Whether the driver answers QEMU's get-info, which makes `dirty-flag` appear.
    var reportsDirtyFlag: Bool { get }
    /// `driver-specific` statistics (file, host_device).
    var specificStatistics: BlockDriverSpecificStatistics? { get }

    // MARK: Permissions

    /// The node's users now need `required` and share `shared` (unions and intersections of
    /// every claim). The `file` driver locks the image accordingly; drivers with children
    /// pass the change on. Throws when another process's locks conflict.
    func permissionsChanged(required: BlockPermissions, shared: BlockPermissions) throws(BlockError)
}

extension BlockDriver {
    public var children: [(role: String, node: BlockNode)] { [] }
    public var isProtocol: Bool { children.isEmpty }
    public var reportsDirtyFlag: Bool { false }
    public var specificStatistics: BlockDriverSpecificStatistics? { nil }
    public func permissionsChanged(required: BlockPermissions, shared: BlockPermissions) throws(BlockError) {}
}

/// Static properties of a driver that the core uses for validation.
public struct BlockDriverCapabilities: Sendable, Equatable {
    /// Requests must be multiples of this (1 for buffered files, 512/4096 with O_DIRECT); the
    /// core pads unaligned requests with read-modify-write.
    public var requestAlignment: UInt32
    /// Writes past the end grow the node (regular files); otherwise they fail with ENOSPC.
    public var growable: Bool
    /// The driver implements resizing (`block_resize`); the core refuses it otherwise with
    /// QEMU's "Image format driver does not support resize".
    public var resizable: Bool

    public init(requestAlignment: UInt32 = 1, growable: Bool = false, resizable: Bool = true) {
        self.requestAlignment = requestAlignment
        self.growable = growable
        self.resizable = resizable
    }
}

/// Flags on write-type requests.
public struct WriteFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Force unit access: durable before completion.
    public static let fua = WriteFlags(rawValue: 1 << 0)
    /// Write-zeroes may deallocate (punch a hole) instead of writing zeroes.
    public static let mayUnmap = WriteFlags(rawValue: 1 << 1)
    /// Write-zeroes must fail with `.notSupported` unless it is faster than writing zeroes.
    public static let fastZero = WriteFlags(rawValue: 1 << 2)
}

/// One extent of block status, as NBD `base:allocation` reports it.
public struct BlockExtent: Sendable, Equatable {
    public var length: UInt64
    /// Not allocated in the backing storage.
    public var isHole: Bool
    /// Reads as zeroes.
    public var isZero: Bool

    public init(length: UInt64, isHole: Bool, isZero: Bool) {
        self.length = length
        self.isHole = isHole
        self.isZero = isZero
    }
}
