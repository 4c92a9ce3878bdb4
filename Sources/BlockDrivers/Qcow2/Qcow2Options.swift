import BlockCore

/// Options of the `qcow2` driver besides its `file` and `backing` children (QAPI
/// `BlockdevOptionsQcow2`). nil = not given, so that the node's description shows only
/// what the user set.
public struct Qcow2Options: Sendable, Equatable {
    /// `lazy-refcounts`: postpone refcount updates while the dirty bit is set (compat 1.1
    /// images only). Default: the image's compatible feature bit.
    public var lazyRefcounts: Bool?
    /// `pass-discard-request`: punch holes in the file for guest discards. Default: whether
    /// the node was opened with `discard=unmap`.
    public var passDiscardRequest: Bool?
    /// `pass-discard-snapshot`: punch holes for clusters freed by snapshot removal (default on).
    public var passDiscardSnapshot: Bool?
    /// `pass-discard-other`: punch holes for clusters freed otherwise, e.g. by copy-on-write
    /// (default off).
    public var passDiscardOther: Bool?
    /// `cache-size`: L2 and refcount caches together, in bytes.
    public var cacheSize: UInt64?
    /// `l2-cache-size`, in bytes.
    public var l2CacheSize: UInt64?
    /// `l2-cache-entry-size`: bytes of an L2 table cached as one entry (power of two,
    /// 512 to the cluster size; default 4096).
    public var l2CacheEntrySize: UInt64?
    /// `refcount-cache-size`, in bytes.
    public var refcountCacheSize: UInt64?
    /// `cache-clean-interval`: accepted; unused entries are not dropped periodically.
    public var cacheCleanInterval: UInt64?
    /// `overlap-check`: accepted and ignored (metadata writes only go where the allocator put
    /// metadata).
    public var overlapCheck: String?

    public init(
        lazyRefcounts: Bool? = nil, passDiscardRequest: Bool? = nil, passDiscardSnapshot: Bool? = nil,
        passDiscardOther: Bool? = nil, cacheSize: UInt64? = nil, l2CacheSize: UInt64? = nil,
        l2CacheEntrySize: UInt64? = nil, refcountCacheSize: UInt64? = nil, cacheCleanInterval: UInt64? = nil,
        overlapCheck: String? = nil
    ) {
        self.lazyRefcounts = lazyRefcounts
        self.passDiscardRequest = passDiscardRequest
        self.passDiscardSnapshot = passDiscardSnapshot
        self.passDiscardOther = passDiscardOther
        self.cacheSize = cacheSize
        self.l2CacheSize = l2CacheSize
        self.l2CacheEntrySize = l2CacheEntrySize
        self.refcountCacheSize = refcountCacheSize
        self.cacheCleanInterval = cacheCleanInterval
        self.overlapCheck = overlapCheck
    }
}

/// Where a qcow2 node's backing data comes from.
public enum Qcow2Backing: Sendable {
    /// `backing: null`: no backing node, even if the header names a backing file;
    /// unallocated clusters read as zeroes.
    case none
    /// `backing` given as a reference or inline definition, already opened.
    case node(BlockNode)
    /// `backing` omitted: open the file the header names. The driver resolves the name
    /// (relative names against the image's folder) and calls `open` with the resolved
    /// filename and the format the header records (nil when it records none).
    case fromHeader(open: @Sendable (_ filename: String, _ format: String?) throws(BlockError) -> BlockNode)
}

/// What `query-named-block-nodes` shows of a qcow2 node (`format-specific` and the
/// backing file members), as plain values.
public struct Qcow2ImageInfo: Sendable, Equatable {
    /// `compat`: "0.10" for version 2, "1.1" for version 3.
    public var compat: String
    public var clusterSize: UInt64
    /// `dirty-flag`: incompatible bit 0 is set.
    public var isDirty: Bool
    public var lazyRefcounts: Bool
    public var refcountBits: Int
    /// `corrupt`: incompatible bit 1 is set.
    public var isCorrupt: Bool
    public var extendedL2: Bool
    /// `compression-type`: "zlib" or "zstd".
    public var compressionType: String
    /// `backing-filename`: the name as the header stores it.
    public var backingFilename: String?
    /// `full-backing-filename`: the name resolved against the image's folder.
    public var fullBackingFilename: String?
    /// `backing-filename-format`.
    public var backingFormat: String?
}
