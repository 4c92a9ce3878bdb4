import BlockCore

/// How many L2 slices and refcount blocks to cache, from the cache options, QEMU's way:
/// by default the L2 cache covers the whole disk up to 32 MiB, the refcount cache holds
/// 4 clusters; `cache-size` splits between them.
struct Qcow2CacheSizes: Equatable {
    static let defaultL2Maximum: UInt64 = 32 << 20
    static let minimumL2Entries: UInt64 = 2
    static let minimumRefcountClusters: UInt64 = 4

    /// Bytes of an L2 table in one cache entry.
    var l2EntrySize: UInt64
    var l2Entries: Int
    var refcountEntries: Int

    init(options: Qcow2Options, header: Qcow2Header) throws(BlockError) {
        let clusterSize = header.clusterSize
        let entrySize = options.l2CacheEntrySize ?? min(4096, clusterSize)
        guard entrySize >= 512, entrySize <= clusterSize, entrySize & (entrySize - 1) == 0 else {
            throw .invalidArgument("L2 cache entry size must be a power of two between 512 and the cluster size (\(clusterSize))")
        }
        // All L2 tables together: one 8-byte entry per guest cluster.
        let guestClusters = (header.size + clusterSize - 1) / clusterSize
        let allL2 = (guestClusters * 8 + clusterSize - 1) / clusterSize * clusterSize
        let minimumRefcount = Self.minimumRefcountClusters * clusterSize
        var l2Bytes: UInt64
        var refcountBytes: UInt64
        if let combined = options.cacheSize {
            switch (options.l2CacheSize, options.refcountCacheSize) {
            case (.some, .some):
                throw .invalidArgument("cache-size, l2-cache-size and refcount-cache-size may not be set at the same time")
            case (.some(let l2), nil):
                guard l2 <= combined else { throw .invalidArgument("l2-cache-size may not exceed cache-size") }
                (l2Bytes, refcountBytes) = (l2, combined - l2)
            case (nil, .some(let refcount)):
                guard refcount <= combined else { throw .invalidArgument("refcount-cache-size may not exceed cache-size") }
                (l2Bytes, refcountBytes) = (combined - refcount, refcount)
            case (nil, nil):
                if combined >= allL2 + minimumRefcount {
                    (l2Bytes, refcountBytes) = (allL2, combined - allL2)
                } else {
                    refcountBytes = min(combined, minimumRefcount)
                    l2Bytes = combined - refcountBytes
                }
            }
        } else {
            l2Bytes = options.l2CacheSize ?? min(allL2, Self.defaultL2Maximum)
            refcountBytes = options.refcountCacheSize ?? minimumRefcount
        }
        guard l2Bytes / entrySize <= UInt64(Int32.max) else { throw .invalidArgument("L2 cache size too big") }
        guard refcountBytes / clusterSize <= UInt64(Int32.max) else { throw .invalidArgument("Refcount cache size too big") }
        l2EntrySize = entrySize
        l2Entries = Int(max(l2Bytes / entrySize, Self.minimumL2Entries))
        refcountEntries = Int(max(refcountBytes / clusterSize, Self.minimumRefcountClusters))
    }
}
