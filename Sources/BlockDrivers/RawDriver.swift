import BlockCore

/// Options of the `raw` driver besides its `file` child. nil = not given: QEMU shows
/// given options in the node's `json:{...}` filename even when they equal the default.
public struct RawOptions: Sendable, Equatable {
    /// Where the node starts in the child (default 0).
    public var offset: Int64?
    /// A fixed size (multiple of 512); the node then cannot be resized.
    public var size: Int64?

    public init(offset: Int64? = nil, size: Int64? = nil) {
        self.offset = offset
        self.size = size
    }
}

/// The `raw` driver: a window (`offset`, `size`) on its child. Requests go to the child's
/// `BlockNode`, so the child's checks, statistics and write threshold apply too.
public final class RawDriver: BlockDriver {
    private let options: RawOptions
    private let child: BlockNode
    private let offset: UInt64
    private let fixedSize: UInt64?
    private let nodeName: String
    /// The claim through which the node's users' permissions reach the child.
    private let claimOnChild: BlockClaimToken

    public init(options: RawOptions, file child: BlockNode, node: BlockNodeOptions) throws(BlockError) {
        if let offset = options.offset, offset < 0 {
            throw .invalidArgument("Parameter 'offset' expects a non-negative number below 2^64")
        }
        if let size = options.size {
            guard size >= 0 else { throw .invalidArgument("Parameter 'size' expects a non-negative number below 2^64") }
            guard size % 512 == 0 else { throw .invalidArgument("Specified size is not multiple of 512") }
        }
        let offset = UInt64(options.offset ?? 0)
        let childSize = try child.refreshSize()
        guard offset <= childSize else {
            throw .invalidArgument("Offset (\(offset)) cannot be greater than size of the containing file (\(childSize))")
        }
        if let size = options.size, UInt64(size) > childSize - offset {
            throw .invalidArgument(
                "The sum of offset (\(offset)) and size (\(size)) has to be smaller or equal to the  actual size of the containing file (\(childSize))")
        }
        self.options = options
        self.child = child
        self.offset = offset
        self.fixedSize = options.size.map(UInt64.init)
        self.nodeName = node.nodeName
        self.claimOnChild = try child.claim(Self.claim(nodeName: node.nodeName, required: [], shared: .all))
    }

    private static func claim(nodeName: String, required: BlockPermissions, shared: BlockPermissions) -> BlockPermissionClaim {
        BlockPermissionClaim(holder: "node '\(nodeName)'", role: "file", required: required, shared: shared)
    }

    public var driverName: String { "raw" }

    public var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: 1, growable: false, resizable: true)
    }

    public var children: [(role: String, node: BlockNode)] { [("file", child)] }

    public func currentSize() throws(BlockError) -> UInt64 {
        if let fixedSize { return fixedSize }
        let childSize = try child.refreshSize()
        return childSize > offset ? childSize - offset : 0
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        try child.read(at: self.offset + offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        try child.write(at: self.offset + offset, from: buffer, flags: flags)
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        try child.writeZeroes(at: self.offset + offset, length: length, flags: flags)
    }

    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try child.discard(at: self.offset + offset, length: length)
    }

    public func flush() throws(BlockError) {
        try child.flush()
    }

    public func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        try child.blockStatus(at: self.offset + offset, length: length)
    }

    public func truncate(to size: UInt64) throws(BlockError) {
        guard fixedSize == nil else { throw .invalidArgument("Cannot resize fixed-size raw disks") }
        try child.truncate(to: offset + size)
    }

    public func close() {
        child.release(claimOnChild)
    }

    /// Without options of its own the node is described by its child's filename, when the
    /// child is a protocol node with a plain one (QEMU: opening that file as raw gives this node).
    public var exactFilename: String? {
        options == RawOptions() && child.driver.isProtocol ? child.driver.exactFilename : nil
    }

    public var optionsDescription: BlockOptionObject {
        var members: [BlockOptionObject.Member] = []
        if let offset = options.offset { members.append(.init("offset", .integer(offset))) }
        members.append(.init("driver", .string(driverName)))
        if let size = options.size { members.append(.init("size", .integer(size))) }
        members.append(.init("file", .object(child.driver.optionsDescription)))
        return BlockOptionObject(members)
    }

    public func allocatedSize() -> UInt64? { child.driver.allocatedSize() }

    public var reportsDirtyFlag: Bool { child.driver.reportsDirtyFlag }

    /// The node's users' needs pass to the child unchanged.
    public func permissionsChanged(required: BlockPermissions, shared: BlockPermissions) throws(BlockError) {
        try child.updateClaim(claimOnChild, to: Self.claim(nodeName: nodeName, required: required, shared: shared))
    }
}
