/// An export of a block node: `--export` (keyval with implied key `type`, or JSON) and QMP
/// `block-export-add` (QAPI `BlockExportOptions`). Members are read in schema order.
public struct BlockExportOptions: QAPIStruct, Sendable, Equatable {
    /// QAPI `BlockExportType`.
    public enum ExportType: String, QAPIEnum, Sendable {
        case nbd
        case vhostUserBlk = "vhost-user-blk"
        case fuse
        case vduseBlk = "vduse-blk"
    }

    /// The members specific to each export type.
    public enum Variant: Sendable, Equatable {
        case nbd(NBDExportOptions)
        case vhostUserBlk(VhostUserBlkExportOptions)
        case fuse(FuseExportOptions)
        case vduseBlk(VduseBlkExportOptions)
    }

    public var id: String
    public var fixedIOThread: Bool
    public var iothread: String?
    public var nodeName: String
    public var writable: Bool
    public var writethrough: Bool
    public var variant: Variant

    public var type: ExportType {
        switch variant {
        case .nbd: .nbd
        case .vhostUserBlk: .vhostUserBlk
        case .fuse: .fuse
        case .vduseBlk: .vduseBlk
        }
    }

    public init(id: String, nodeName: String, variant: Variant, writable: Bool = false, writethrough: Bool = false,
                iothread: String? = nil, fixedIOThread: Bool = false) {
        self.id = id
        self.nodeName = nodeName
        self.variant = variant
        self.writable = writable
        self.writethrough = writethrough
        self.iothread = iothread
        self.fixedIOThread = fixedIOThread
    }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        let type = try members.required("type", as: ExportType.self)
        id = try members.required("id")
        fixedIOThread = try members.optional("fixed-iothread", default: false)
        iothread = try members.optional("iothread")
        nodeName = try members.required("node-name")
        writable = try members.optional("writable", default: false)
        writethrough = try members.optional("writethrough", default: false)
        switch type {
        case .nbd: variant = .nbd(try NBDExportOptions(members: &members))
        case .vhostUserBlk: variant = .vhostUserBlk(try VhostUserBlkExportOptions(members: &members))
        case .fuse: variant = .fuse(try FuseExportOptions(members: &members))
        case .vduseBlk: variant = .vduseBlk(try VduseBlkExportOptions(members: &members))
        }
    }
}

/// The NBD members of ``BlockExportOptions`` (QAPI `BlockExportOptionsNbd`).
public struct NBDExportOptions: Sendable, Equatable {
    /// The export name; QEMU uses the node name when absent. May be empty.
    public var name: String?
    public var description: String?
    /// Dirty bitmaps to expose as `qemu:dirty-bitmap:NAME` contexts.
    public var bitmaps: [DirtyBitmapReference]?
    /// Expose the `qemu:allocation-depth` context.
    public var allocationDepth: Bool
    /// `__io.highwater_on-enospc` (HighWater): what a write that fails with ENOSPC does.
    public var onNoSpace: NoSpaceAction
    /// `__io.highwater_enospc-timeout` (HighWater): how long, in seconds, a write is held
    /// under `hold` before it fails with ENOSPC; 0 holds it for as long as it takes (dm-thin's
    /// `no_space_timeout`, whose default this is).
    public var noSpaceTimeoutSeconds: UInt32

    /// QAPI `__io.highwater_NbdEnospcAction`.
    public enum NoSpaceAction: String, QAPIEnum, Sendable {
        /// The client gets ENOSPC (QEMU's behaviour).
        case report
        /// The write waits until the volume under the export grows, then runs again.
        case hold
    }

    public static let defaultNoSpaceTimeoutSeconds: UInt32 = 60

    public init(name: String? = nil, description: String? = nil, bitmaps: [DirtyBitmapReference]? = nil,
                allocationDepth: Bool = false, onNoSpace: NoSpaceAction = .report,
                noSpaceTimeoutSeconds: UInt32 = Self.defaultNoSpaceTimeoutSeconds) {
        self.name = name
        self.description = description
        self.bitmaps = bitmaps
        self.allocationDepth = allocationDepth
        self.onNoSpace = onNoSpace
        self.noSpaceTimeoutSeconds = noSpaceTimeoutSeconds
    }

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        name = try members.optional("name")
        description = try members.optional("description")
        bitmaps = try members.optional("bitmaps")
        allocationDepth = try members.optional("allocation-depth", default: false)
        onNoSpace = try members.optional("__io.highwater_on-enospc", default: .report)
        noSpaceTimeoutSeconds = try members.optional("__io.highwater_enospc-timeout", default: Self.defaultNoSpaceTimeoutSeconds)
    }
}

/// QAPI `BlockDirtyBitmapOrStr`: a bitmap of the exported node by name, or of any node.
public enum DirtyBitmapReference: QAPIDecodable, Sendable, Equatable {
    case local(name: String)
    case external(node: String, name: String)

    public init(qapi input: QAPIInput) throws(QAPIError) {
        switch input.value {
        case .string(let name):
            self = .local(name: name)
        case .object:
            var members = try input.object()
            self = .external(node: try members.required("node"), name: try members.required("name"))
            try members.finish()
        default:
            throw input.invalidAlternate("BlockDirtyBitmapOrStr")
        }
    }
}

/// The vhost-user-blk members of ``BlockExportOptions``.
public struct VhostUserBlkExportOptions: Sendable, Equatable {
    public var address: SocketAddress
    public var logicalBlockSize: UInt64?
    public var numQueues: UInt16?

    public init(address: SocketAddress, logicalBlockSize: UInt64? = nil, numQueues: UInt16? = nil) {
        self.address = address
        self.logicalBlockSize = logicalBlockSize
        self.numQueues = numQueues
    }

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        address = try members.required("addr")
        logicalBlockSize = try members.optional("logical-block-size", as: QAPISize.self)?.bytes
        numQueues = try members.optional("num-queues")
    }
}

/// The FUSE members of ``BlockExportOptions``.
public struct FuseExportOptions: Sendable, Equatable {
    /// QAPI `FuseExportAllowOther`.
    public enum AllowOther: String, QAPIEnum, Sendable { case off, on, auto }

    public var mountpoint: String
    public var growable: Bool?
    public var allowOther: AllowOther?

    public init(mountpoint: String, growable: Bool? = nil, allowOther: AllowOther? = nil) {
        self.mountpoint = mountpoint
        self.growable = growable
        self.allowOther = allowOther
    }

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        mountpoint = try members.required("mountpoint")
        growable = try members.optional("growable")
        allowOther = try members.optional("allow-other")
    }
}

/// The VDUSE members of ``BlockExportOptions``.
public struct VduseBlkExportOptions: Sendable, Equatable {
    public var name: String
    public var numQueues: UInt16?
    public var queueSize: UInt16?
    public var logicalBlockSize: UInt64?
    public var serial: String?

    public init(name: String, numQueues: UInt16? = nil, queueSize: UInt16? = nil, logicalBlockSize: UInt64? = nil,
                serial: String? = nil) {
        self.name = name
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.logicalBlockSize = logicalBlockSize
        self.serial = serial
    }

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        name = try members.required("name")
        numQueues = try members.optional("num-queues")
        queueSize = try members.optional("queue-size")
        logicalBlockSize = try members.optional("logical-block-size", as: QAPISize.self)?.bytes
        serial = try members.optional("serial")
    }
}
