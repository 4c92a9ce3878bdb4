import BlockCore

/// What `file` and `host_device` have in common: everything but size, growth, zeroing,
/// discarding and resizing goes straight to their `PosixFile`.
protocol PosixFileDriver: BlockDriver {
    var file: PosixFile { get }
}

extension PosixFileDriver {
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        try file.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        try file.write(at: offset, from: buffer)
        if flags.contains(.fua) { try file.flush() }
    }

    public func flush() throws(BlockError) {
        try file.flush()
    }

    public func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        file.blockStatus(at: offset, length: length)
    }

    public func close() {
        file.close()
    }

    public var exactFilename: String? { file.path }

    public var optionsDescription: BlockOptionObject {
        BlockOptionObject([.init("driver", .string(driverName)), .init("filename", .string(file.path))])
    }

    public func allocatedSize() -> UInt64? { file.allocatedBytes() }

    public var reportsDirtyFlag: Bool { true }

    public var specificStatistics: BlockDriverSpecificStatistics? { file.discardStatistics(driver: driverName) }

    public func permissionsChanged(required: BlockPermissions, shared: BlockPermissions) throws(BlockError) {
        try file.lock?.apply(required: required, shared: shared)
    }

    /// The checks QEMU makes once the file is open.
    static func checkAIO(_ options: FileOptions, node: BlockNodeOptions) throws(BlockError) {
        if options.aio == .native && !node.cacheDirect {
            throw .invalidArgument("aio=native was specified, but it requires cache.direct=on, which was not specified.")
        }
    }
}
