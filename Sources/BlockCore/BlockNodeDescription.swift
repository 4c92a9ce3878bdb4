/// A value in a node's option description (QEMU's QDict behind a `json:{...}` filename).
public indirect enum BlockOptionValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case boolean(Bool)
    case object(BlockOptionObject)
}

/// An ordered set of options. The order is QEMU's (its QDict hash order), so that converting
/// it to JSON text reproduces QEMU's `json:{...}` filenames byte for byte.
public struct BlockOptionObject: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: BlockOptionValue
        public init(_ key: String, _ value: BlockOptionValue) {
            self.key = key
            self.value = value
        }
    }

    public var members: [Member]

    public init(_ members: [Member]) { self.members = members }

    public subscript(key: String) -> BlockOptionValue? {
        members.first { $0.key == key }?.value
    }
}

/// How `query-named-block-nodes` names a node (`file` and `image.filename`): a plain
/// filename when one describes it fully, otherwise `json:` followed by the options as JSON.
public enum BlockNodeFilename: Sendable, Equatable {
    case plain(String)
    case json(BlockOptionObject)
}

/// The `image` member of `query-named-block-nodes` apart from the filename.
public struct BlockImageInfo: Sendable, Equatable {
    /// `format`: the driver name.
    public var format: String
    /// `virtual-size`.
    public var virtualSize: UInt64
    /// `actual-size`: bytes allocated on the host; nil when unknown.
    public var actualSize: UInt64?
    /// `dirty-flag`: present (false) only for drivers that answer QEMU's get-info.
    public var dirtyFlag: Bool?

    public init(format: String, virtualSize: UInt64, actualSize: UInt64?, dirtyFlag: Bool?) {
        self.format = format
        self.virtualSize = virtualSize
        self.actualSize = actualSize
        self.dirtyFlag = dirtyFlag
    }
}

/// `driver-specific` of `query-blockstats` for `file` and `host_device` nodes.
public struct BlockDriverSpecificStatistics: Sendable, Equatable {
    /// `driver`: the driver name.
    public var driver: String
    public var discardOperationsSucceeded: UInt64
    public var discardOperationsFailed: UInt64
    public var discardBytesSucceeded: UInt64

    public init(driver: String, discardOperationsSucceeded: UInt64, discardOperationsFailed: UInt64, discardBytesSucceeded: UInt64) {
        self.driver = driver
        self.discardOperationsSucceeded = discardOperationsSucceeded
        self.discardOperationsFailed = discardOperationsFailed
        self.discardBytesSucceeded = discardBytesSucceeded
    }
}
