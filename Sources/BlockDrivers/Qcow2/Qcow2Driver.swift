import BlockCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The `qcow2` format driver, stacked on its `file` child (and an optional `backing` node).
///
/// Metadata (L1, cached L2 slices and refcount blocks, the allocator) sits behind one
/// mutex. Reads, and writes to clusters the image already owns alone, look their host
/// offset up under the lock and do the data I/O outside it, so they run in parallel.
/// Allocating writes allocate under the lock, write their data outside it and update L2
/// under it again (`Qcow2Allocation`); requests over clusters whose allocation is in
/// flight wait for it. Write-zeroes and discards run under the lock. All I/O goes to the
/// child nodes, so their checks, statistics and write threshold apply.
public final class Qcow2Driver: BlockDriver {
    private let options: Qcow2Options
    private let file: BlockNode
    private let backing: BlockNode?
    private let backingSource: BackingSource
    private let nodeName: String
    private let isWritable: Bool
    private let geometry: Qcow2Geometry
    private let source: Qcow2DataSource
    private let inFlight: Qcow2InFlightIO
    private let metadata: Mutex<Qcow2Metadata>
    private let closed = Atomic<Bool>(false)
    private let fileClaim: BlockClaimToken
    private let backingClaim: BlockClaimToken?
    private let fixedInfo: Qcow2ImageInfo

    private enum BackingSource { case none, node, header }

    /// Opens the image on `file`. `node` gives the node's name and read-only state;
    /// `backing` says where unallocated clusters read from.
    public init(options: Qcow2Options, file: BlockNode, node: BlockNodeOptions, backing: Qcow2Backing) throws(BlockError) {
        let header = try Self.readHeader(file)
        let writable = !node.readOnly
        if writable && header.incompatibleFeatures & Qcow2Header.Incompatible.corrupt != 0 {
            throw .invalidArgument("qcow2: Image is corrupt; cannot be opened read/write")
        }
        if writable && header.incompatibleFeatures & Qcow2Header.Incompatible.dirty != 0 {
            throw .notSupported(
                "qcow2: Image was not closed cleanly (dirty bit set); repair it with 'qemu-img check -r all' before opening it read/write")
        }
        let lazyRefcounts = options.lazyRefcounts ?? (header.compatibleFeatures & Qcow2Header.Compatible.lazyRefcounts != 0)
        if lazyRefcounts && header.version < 3 {
            throw .invalidArgument("Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level")
        }
        let caches = try Qcow2CacheSizes(options: options, header: header)

        self.options = options
        self.file = file
        self.nodeName = node.nodeName
        self.isWritable = writable
        self.fileClaim = try file.claim(Self.fileClaim(nodeName: node.nodeName, writable: writable, required: [], shared: .all))

        let backingNode: BlockNode?
        var fullBackingFilename: String?
        do throws(BlockError) {
            switch backing {
            case .none:
                backingNode = nil
                backingSource = .none
            case .node(let node):
                backingNode = node
                backingSource = .node
            case .fromHeader(let open):
                backingSource = .header
                if let name = header.backingFile {
                    let resolved = Self.resolve(backingFile: name, relativeTo: file.driver.exactFilename)
                    fullBackingFilename = resolved
                    backingNode = try Qcow2BackingChain.open(resolved, under: file.driver.exactFilename) { () throws(BlockError) -> BlockNode in
                        do throws(BlockError) {
                            return try open(resolved, header.backingFormat)
                        } catch {
                            throw .invalidArgument("Could not open backing file: \(error.description)")
                        }
                    }
                } else {
                    backingNode = nil
                }
            }
            self.backing = backingNode
            let nodeName = node.nodeName
            self.backingClaim = try backingNode.map { (node: BlockNode) throws(BlockError) -> BlockClaimToken in
                try node.claim(Self.backingClaim(nodeName: nodeName, required: [], shared: .all))
            }
        } catch {
            file.release(fileClaim)
            throw error
        }

        geometry = Qcow2Geometry(header: header, sliceBytes: caches.l2EntrySize)
        source = Qcow2DataSource(file: file, backing: backingNode, geometry: geometry)
        fixedInfo = Qcow2ImageInfo(
            compat: header.version == 2 ? "0.10" : "1.1", clusterSize: header.clusterSize, isDirty: false,
            lazyRefcounts: header.compatibleFeatures & Qcow2Header.Compatible.lazyRefcounts != 0,
            refcountBits: 1 << header.refcountOrder, isCorrupt: header.incompatibleFeatures & Qcow2Header.Incompatible.corrupt != 0,
            extendedL2: false, compressionType: header.compressionType == 0 ? "zlib" : "zstd",
            backingFilename: header.backingFile, fullBackingFilename: fullBackingFilename, backingFormat: header.backingFormat)
        do throws(BlockError) {
            var state = try Qcow2Metadata(
                header: header, geometry: geometry, source: source, l2CacheEntries: caches.l2Entries,
                refcountCacheEntries: caches.refcountEntries, lazyRefcounts: lazyRefcounts && writable,
                passDiscard: (options.passDiscardRequest ?? (node.discard == .unmap), options.passDiscardSnapshot ?? true,
                              options.passDiscardOther ?? false))
            inFlight = state.inFlight
            if writable && header.version >= 3 && header.autoclearFeatures != 0 {
                // Autoclear features (bitmaps) this driver does not maintain stop being valid.
                try source.writeHost(at: Qcow2Header.Field.autoclearFeatures, [UInt8](bigEndian: UInt64(0)))
                try file.flush()
                state.header.autoclearFeatures = 0
            }
            metadata = Mutex(state)
        } catch {
            if let backingNode, let backingClaim { backingNode.release(backingClaim) }
            file.release(fileClaim)
            throw error
        }
    }

    private static func readHeader(_ file: BlockNode) throws(BlockError) -> Qcow2Header {
        let fileSize = try file.refreshSize()
        let start = try Qcow2DataSource.read(file, at: 0, count: Int(min(fileSize, 512)))
        let clusterBits = Qcow2ByteReader(start).u32(20)
        let clusterZero = clusterBits >= 9 && clusterBits <= 21
            ? try Qcow2DataSource.read(file, at: 0, count: Int(min(fileSize, 1 << UInt64(clusterBits)))) : start
        return try Qcow2Header(parsing: clusterZero, fileSize: fileSize)
    }

    /// QEMU's rule: relative backing names are relative to the image's folder; absolute
    /// names and protocol or `json:` names are used as given.
    public static func resolve(backingFile name: String, relativeTo imagePath: String?) -> String {
        guard let imagePath, !name.hasPrefix("/"), !Self.hasProtocolPrefix(name),
              let slash = imagePath.lastIndex(of: "/")
        else { return name }
        return String(imagePath[...slash]) + name
    }

    private static func hasProtocolPrefix(_ name: String) -> Bool {
        guard let colon = name.firstIndex(of: ":") else { return false }
        return !name[..<colon].contains("/")
    }

    // MARK: Permissions

    /// QEMU's rule for a format node's file: consistent read always, write and resize when
    /// the node is writable (metadata changes), and never shared with others.
    private static func fileClaim(nodeName: String, writable: Bool, required: BlockPermissions, shared: BlockPermissions) -> BlockPermissionClaim {
        var needed = required.union(.consistentRead)
        if writable { needed.formUnion([.write, .resize]) }
        return BlockPermissionClaim(holder: "node '\(nodeName)'", role: "file", required: needed, shared: shared.subtracting([.write, .resize]))
    }

    /// QEMU's rule for a backing node: at most consistent read; others may write to it
    /// only if the node's users tolerate changing data.
    private static func backingClaim(nodeName: String, required: BlockPermissions, shared: BlockPermissions) -> BlockPermissionClaim {
        var allowed: BlockPermissions = [.consistentRead, .graphMod, .writeUnchanged]
        if shared.contains(.write) { allowed.formUnion([.write, .resize]) }
        return BlockPermissionClaim(holder: "node '\(nodeName)'", role: "backing", required: required.intersection(.consistentRead), shared: allowed)
    }

    public func permissionsChanged(required: BlockPermissions, shared: BlockPermissions) throws(BlockError) {
        try file.updateClaim(fileClaim, to: Self.fileClaim(nodeName: nodeName, writable: isWritable, required: required, shared: shared))
        if let backing, let backingClaim {
            try backing.updateClaim(backingClaim, to: Self.backingClaim(nodeName: nodeName, required: required, shared: shared))
        }
    }

    // MARK: BlockDriver

    public var driverName: String { "qcow2" }

    public var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: 1, growable: false, resizable: false)
    }

    public var children: [(role: String, node: BlockNode)] {
        [("file", file)] + (backing.map { [("backing", $0)] } ?? [])
    }

    public func currentSize() throws(BlockError) -> UInt64 { geometry.virtualSize }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let inCluster = geometry.offsetInCluster(position)
            let remaining = UInt64(buffer.count - done)
            let (state, clusters, epoch, preallocated) = try metadata.withLock {
                (state: inout Qcow2Metadata) throws(BlockError) -> (Qcow2ClusterState, UInt64, Int?, Bool) in
                let preallocated = state.isMetadataPreallocated()
                let run = try state.run(at: geometry.clusterIndex(position), maximum: geometry.clusterCount(bytes: inCluster + remaining))
                switch run.state {
                case .normal, .compressed:
                    inFlight.begin(state.epoch)
                    return (run.state, run.clusters, state.epoch, preallocated)
                default:
                    return (run.state, run.clusters, nil, preallocated)
                }
            }
            defer { if let epoch { inFlight.end(epoch) } }
            let length = min(remaining, clusters * geometry.clusterSize - inCluster)
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + Int(length)])
            switch state {
            case .normal(let host, _) where preallocated:
                try readSkippingHoles(at: host + inCluster, into: part)
            case .normal(let host, _):
                try source.readHost(at: host + inCluster, into: part)
            case .zeroPlain, .zeroAllocated:
                part.initializeMemory(as: UInt8.self, repeating: 0)
            case .unallocated:
                try source.readUnallocated(at: position, into: part)
            case .compressed(let offset, let sectors):
                try source.readCompressed(offset: offset, sectors: sectors, from: inCluster, into: part)
            }
            done += Int(length)
        }
    }

    /// Reads data clusters of a metadata-preallocated image where the file has data, and
    /// fills the holes with zeroes, as block status reports them. QEMU's NBD server reads
    /// such ranges the same way (it skips what block status calls zero), which also keeps
    /// the file's never-written (unwritten) ranges out of the page cache, where the file
    /// system would report them as data from then on.
    private func readSkippingHoles(at hostOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        var done = 0
        while done < buffer.count {
            let status = hostStatus(at: hostOffset + UInt64(done), length: UInt64(buffer.count - done))
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + Int(status.length)])
            if status.isZero {
                part.initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                try source.readHost(at: hostOffset + UInt64(done), into: part)
            }
            done += part.count
        }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let rest = UnsafeRawBufferPointer(rebasing: buffer[done...])
            let step = try metadata.withLock { (state: inout Qcow2Metadata) throws(BlockError) -> Qcow2WriteStep in
                try state.writeStep(at: position, data: rest)
            }
            switch step {
            case .inPlace(let host, let length, let epoch):
                defer { inFlight.end(epoch) }
                try file.write(at: host, from: UnsafeRawBufferPointer(rebasing: rest[..<Int(length)]))
                done += Int(length)
            case .allocate(let allocation):
                try write(allocation, from: UnsafeRawBufferPointer(rebasing: rest[..<Int(allocation.length)]))
                done += Int(allocation.length)
            case .wait(let gate):
                gate.wait()
            }
        }
        if flags.contains(.fua) { try flush() }
    }

    /// Writes an allocation's data outside the lock (so that allocating writes overlap),
    /// then points the L2 entries at it, or gives the clusters back if the write failed.
    private func write(_ allocation: Qcow2Allocation, from payload: UnsafeRawBufferPointer) throws(BlockError) {
        let written = Result { () throws(BlockError) -> Bool in try source.writeAllocation(allocation, payload: payload) }
        let (gate, finished) = metadata.withLock {
            (state: inout Qcow2Metadata) -> (Qcow2AllocationGate?, Result<Void, BlockError>) in
            let gate = state.endPendingAllocation(allocation)
            return (gate, Result { () throws(BlockError) in try state.finishAllocation(allocation, dataNeedsFlush: try? written.get()) })
        }
        gate?.open()
        _ = try written.get()
        try finished.get()
    }

    /// QEMU's split: the partial cluster at the start, whole clusters, the partial cluster
    /// at the end; a range that reaches the end of the disk ends with a whole cluster.
    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        let end = offset + length
        let clusterSize = geometry.clusterSize
        let firstWhole = (offset + clusterSize - 1) / clusterSize
        let endWhole = end >= geometry.virtualSize ? geometry.clusterCount(bytes: geometry.virtualSize) : end / clusterSize
        let headEnd = min(end, firstWhole * clusterSize)
        if headEnd > offset { try zeroPartialCluster(at: offset, length: headEnd - offset, flags: flags) }
        if endWhole > firstWhole {
            let done = try withMetadata(afterAllocationsOver: firstWhole..<endWhole) { (state: inout Qcow2Metadata) throws(BlockError) -> Bool in
                try state.prepareAllocation()
                return try state.zeroClusters(from: firstWhole, count: endWhole - firstWhole, unmap: flags.contains(.mayUnmap))
            }
            if !done {
                if flags.contains(.fastZero) { throw .notSupported("fast zeroing not supported by this image") }
                let start = firstWhole * clusterSize
                try writeZeroBuffers(at: start, length: min(endWhole * clusterSize, geometry.virtualSize) - start)
            }
        }
        let tailStart = max(endWhole * clusterSize, headEnd)
        if end > tailStart { try zeroPartialCluster(at: tailStart, length: end - tailStart, flags: flags) }
        if flags.contains(.fua) { try flush() }
    }

    /// Zeroes part of one cluster as QEMU does: when the cluster has no data (unallocated or
    /// zero) and the rest of it reads as zeroes, the whole cluster becomes a zero cluster;
    /// otherwise zeroes are written as data.
    private func zeroPartialCluster(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        let cluster = geometry.clusterIndex(offset)
        let clusterStart = cluster * geometry.clusterSize
        let clusterEnd = min(clusterStart + geometry.clusterSize, geometry.virtualSize)
        let zeroed = try withMetadata(afterAllocationsOver: cluster..<cluster + 1) { (state: inout Qcow2Metadata) throws(BlockError) -> Bool in
            // QEMU's test of the rest of the cluster is a block-status query.
            _ = state.isMetadataPreallocated()
            switch try state.clusterState(cluster) {
            case .zeroPlain, .zeroAllocated:
                break
            case .unallocated:
                guard try source.backingReadsAsZeroes(at: clusterStart, length: offset - clusterStart),
                      try source.backingReadsAsZeroes(at: offset + length, length: clusterEnd - offset - length)
                else { return false }
            case .normal, .compressed:
                return false
            }
            try state.prepareAllocation()
            return try state.zeroClusters(from: cluster, count: 1, unmap: flags.contains(.mayUnmap))
        }
        if zeroed { return }
        if flags.contains(.fastZero) { throw .notSupported("fast zeroing of partial clusters not supported") }
        try writeZeroBuffers(at: offset, length: length)
    }

    private func writeZeroBuffers(at offset: UInt64, length: UInt64) throws(BlockError) {
        try ZeroFill.write(at: offset, length: length) { offset, zeroes throws(BlockError) in
            try write(at: offset, from: zeroes, flags: [])
        }
    }

    /// Frees whole clusters in the range (partial clusters are left alone: discard is a hint).
    /// A v2 image with a backing file is left alone entirely: without the zero flag, a
    /// discarded cluster would show the backing file's data (QEMU does nothing either).
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        if !geometry.supportsZeroFlag && backing != nil { return }
        let clusterSize = geometry.clusterSize
        let first = (offset + clusterSize - 1) / clusterSize
        // The last cluster counts as whole when the range reaches the end of the disk.
        let end = offset + length >= geometry.virtualSize ? geometry.clusterCount(bytes: geometry.virtualSize) : (offset + length) / clusterSize
        guard end > first else { return }
        _ = try withMetadata(afterAllocationsOver: first..<end) { (state: inout Qcow2Metadata) throws(BlockError) -> Bool in
            try state.discardClusters(from: first, count: end - first)
            return true
        }
    }

    /// Runs `body` under the metadata lock once no allocating write is in flight over
    /// `clusters` (which `body` changes).
    private func withMetadata(
        afterAllocationsOver clusters: Range<UInt64>, _ body: (inout Qcow2Metadata) throws(BlockError) -> Bool
    ) throws(BlockError) -> Bool {
        while true {
            let (gate, result) = try metadata.withLock { (state: inout Qcow2Metadata) throws(BlockError) -> (Qcow2AllocationGate?, Bool) in
                if let gate = state.gateOfAllocation(overlapping: clusters) { return (gate, false) }
                return (nil, try body(&state))
            }
            guard let gate else { return result }
            gate.wait()
        }
    }

    public func flush() throws(BlockError) {
        try metadata.withLock { (state: inout Qcow2Metadata) throws(BlockError) in try state.writeBack() }
        try file.flush()
    }

    public func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        var extents: [BlockExtent] = []
        var position = offset
        let end = offset + length
        func append(_ length: UInt64, hole: Bool, zero: Bool) {
            if let last = extents.last, last.isHole == hole, last.isZero == zero {
                extents[extents.count - 1].length += length
            } else {
                extents.append(BlockExtent(length: length, isHole: hole, isZero: zero))
            }
        }
        while position < end && extents.count < 1024 {
            let inCluster = geometry.offsetInCluster(position)
            let (run, preallocated) = try metadata.withLock { (state: inout Qcow2Metadata) throws(BlockError) in
                let preallocated = state.isMetadataPreallocated()
                return (try state.run(at: geometry.clusterIndex(position), maximum: geometry.clusterCount(bytes: inCluster + end - position)), preallocated)
            }
            var runLength = min(end - position, run.clusters * geometry.clusterSize - inCluster)
            switch run.state {
            case .normal(let host, _) where preallocated:
                let inFile = hostStatus(at: host + inCluster, length: runLength)
                runLength = inFile.length
                append(runLength, hole: false, zero: inFile.isZero)
            case .normal, .compressed:
                append(runLength, hole: false, zero: false)
            case .zeroPlain, .zeroAllocated:
                append(runLength, hole: true, zero: true)
            case .unallocated:
                if let backing, position < backing.size {
                    // What the backing chain reports, as far as it reaches into this run.
                    let reported = try backing.blockStatus(at: position, length: min(runLength, backing.size - position))
                    runLength = 0
                    for extent in reported {
                        append(extent.length, hole: extent.isHole, zero: extent.isZero)
                        runLength += extent.length
                    }
                } else {
                    append(runLength, hole: true, zero: true)
                }
            }
            position += runLength
        }
        return extents
    }

    /// What the file says about the host range of data clusters (QEMU's recursive block
    /// status, used for metadata-preallocated images): zeroes where it has a hole, or where
    /// the range lies past its end. Limits the range to the file's extent there; errors
    /// only mean no extra information.
    private func hostStatus(at hostOffset: UInt64, length: UInt64) -> (length: UInt64, isZero: Bool) {
        let fileSize = file.size
        guard hostOffset < fileSize else { return (length, true) }
        if let end = source.fileDataExtent.end(containing: hostOffset) { return (min(length, end - hostOffset), false) }
        // The whole extent, up to the next hole or data, is worth remembering.
        guard let extent = (try? file.blockStatus(at: hostOffset, length: fileSize - hostOffset))?.first, extent.length > 0 else {
            return (length, false)
        }
        if !extent.isZero {
            source.fileDataExtent.remember(hostOffset..<hostOffset + extent.length)
            return (min(length, extent.length), false)
        }
        // A hole up to the end of the file: the rest of the range reads as zeroes too.
        return (hostOffset + extent.length >= fileSize ? length : min(length, extent.length), true)
    }

    public func truncate(to size: UInt64) throws(BlockError) {
        throw .notSupported("Image format driver does not support resize")
    }

    public func close() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        if isWritable {
            try? metadata.withLock { (state: inout Qcow2Metadata) throws(BlockError) in
                try state.writeBack()
                try file.flush()
                try state.setDirty(false)
            }
        }
        if let backing, let backingClaim { backing.release(backingClaim) }
        file.release(fileClaim)
    }

    // MARK: Reporting

    /// The image file's name stands for the node when nothing but defaults were given.
    public var exactFilename: String? {
        guard options == Qcow2Options(), file.driver.isProtocol else { return nil }
        switch backingSource {
        case .header: return file.driver.exactFilename
        case .none: return fixedInfo.backingFilename == nil ? file.driver.exactFilename : nil
        case .node: return nil
        }
    }

    public var optionsDescription: BlockOptionObject {
        var members: [BlockOptionObject.Member] = [.init("driver", .string(driverName))]
        func add(_ key: String, _ value: BlockOptionValue?) {
            if let value { members.append(.init(key, value)) }
        }
        add("lazy-refcounts", options.lazyRefcounts.map(BlockOptionValue.boolean))
        add("pass-discard-request", options.passDiscardRequest.map(BlockOptionValue.boolean))
        add("pass-discard-snapshot", options.passDiscardSnapshot.map(BlockOptionValue.boolean))
        add("pass-discard-other", options.passDiscardOther.map(BlockOptionValue.boolean))
        add("cache-size", options.cacheSize.map(BlockOptionValue.unsigned))
        add("l2-cache-size", options.l2CacheSize.map(BlockOptionValue.unsigned))
        add("l2-cache-entry-size", options.l2CacheEntrySize.map(BlockOptionValue.unsigned))
        add("refcount-cache-size", options.refcountCacheSize.map(BlockOptionValue.unsigned))
        add("cache-clean-interval", options.cacheCleanInterval.map(BlockOptionValue.unsigned))
        if case .node = backingSource, let backing { add("backing", .object(backing.driver.optionsDescription)) }
        add("file", .object(file.driver.optionsDescription))
        return BlockOptionObject(members)
    }

    public func allocatedSize() -> UInt64? { file.driver.allocatedSize() }

    public var reportsDirtyFlag: Bool { true }

    /// `format-specific` and backing members of `query-named-block-nodes`.
    public var imageInfo: Qcow2ImageInfo {
        var info = fixedInfo
        metadata.withLock { state in
            info.isDirty = state.isMarkedDirty
            info.isCorrupt = state.header.incompatibleFeatures & Qcow2Header.Incompatible.corrupt != 0
        }
        return info
    }

    public var clusterSize: UInt64 { geometry.clusterSize }
}
