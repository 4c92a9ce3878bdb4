import Synchronization

/// Options every node has, whatever its driver (QAPI `BlockdevOptions` common members).
public struct BlockNodeOptions: Sendable, Equatable {
    public enum DiscardMode: String, Sendable { case ignore, unmap }
    public enum DetectZeroes: String, Sendable { case off, on, unmap }

    public var nodeName: String
    public var readOnly: Bool
    public var discard: DiscardMode
    public var cacheDirect: Bool
    public var cacheNoFlush: Bool
    public var detectZeroes: DetectZeroes
    /// The node was created by `blockdev-add`/`--blockdev` itself rather than as an inline child;
    /// only such nodes can be deleted with `blockdev-del`.
    public var isExplicit: Bool

    public init(
        nodeName: String, readOnly: Bool = false, discard: DiscardMode = .ignore,
        cacheDirect: Bool = false, cacheNoFlush: Bool = false, detectZeroes: DetectZeroes = .off,
        isExplicit: Bool = true
    ) {
        self.nodeName = nodeName
        self.readOnly = readOnly
        self.discard = discard
        self.cacheDirect = cacheDirect
        self.cacheNoFlush = cacheNoFlush
        self.detectZeroes = detectZeroes
        self.isExplicit = isExplicit
    }
}

/// What the block layer reports to whoever listens (the QMP monitors, the controller).
/// The block layer fires; it never decides what to do about it.
public enum BlockEvent: Sendable, Equatable {
    case writeThresholdExceeded(nodeName: String, amountExceeded: UInt64, threshold: UInt64)
}

/// Receives block events. Called on the I/O thread that caused the event: implementations
/// must hand the event off quickly.
public protocol BlockEventSink: Sendable {
    func blockEvent(_ event: BlockEvent)
}

/// A node of the block graph: a driver plus everything the core does for every driver —
/// range, permission and alignment checks, statistics, the write threshold.
///
/// All I/O entry points are thread-safe and synchronous.
public final class BlockNode: Sendable {
    public let options: BlockNodeOptions
    public let driver: any BlockDriver
    public let statistics = BlockStatistics()
    let eventSink: any BlockEventSink
    private let threshold = Atomic<UInt64>(0)
    private let cachedSize: Atomic<UInt64>
    private let alignment: UInt64
    private let claims = Mutex(Claims())

    public var name: String { options.nodeName }
    public var isReadOnly: Bool { options.readOnly }

    public init(options: BlockNodeOptions, driver: any BlockDriver, eventSink: any BlockEventSink) throws(BlockError) {
        self.options = options
        self.driver = driver
        self.eventSink = eventSink
        self.alignment = UInt64(max(1, driver.capabilities.requestAlignment))
        self.cachedSize = Atomic(try driver.currentSize())
    }

    // MARK: Size

    /// The size the core validates against (cached; refreshed by `refreshSize()`).
    public var size: UInt64 { cachedSize.load(ordering: .relaxed) }

    /// Re-reads the size from the driver (a grown host device, a file changed outside).
    @discardableResult
    public func refreshSize() throws(BlockError) -> UInt64 {
        let size = try driver.currentSize()
        cachedSize.store(size, ordering: .relaxed)
        return size
    }

    /// Resizes the node (`block_resize`), holding the resize permission meanwhile as QEMU
    /// does: a user that does not share it (an export) makes this fail.
    public func truncate(to newSize: UInt64) throws(BlockError) {
        let token = try claim(.resize)
        defer { release(token) }
        guard !isReadOnly else { throw .invalidArgument("Image is read-only") }
        guard driver.capabilities.resizable else {
            throw .notSupported("Image format driver does not support resize")
        }
        try driver.truncate(to: newSize)
        try refreshSize()
    }

    // MARK: Permissions

    private struct Claims {
        var nextToken: UInt64 = 0
        var byToken: [UInt64: BlockPermissionClaim] = [:]

        var combined: (required: BlockPermissions, shared: BlockPermissions) {
            byToken.values.reduce(into: (BlockPermissions(), BlockPermissions.all)) { result, claim in
                result.required.formUnion(claim.required)
                result.shared.formIntersection(claim.shared)
            }
        }
    }

    /// Registers a user's permissions (an export, a parent node). Fails with QEMU's
    /// "Permission conflict" text when an existing user does not share what the new one
    /// requires or vice versa, or when another process's image locks conflict.
    public func claim(_ claim: BlockPermissionClaim) throws(BlockError) -> BlockClaimToken {
        try claims.withLock { (claims: inout Claims) throws(BlockError) -> BlockClaimToken in
            let token = claims.nextToken
            try apply(claim, as: token, to: &claims)
            claims.nextToken += 1
            return BlockClaimToken(value: token)
        }
    }

    /// Replaces a claim (a parent whose own users changed); on failure the old one stays.
    public func updateClaim(_ token: BlockClaimToken, to claim: BlockPermissionClaim) throws(BlockError) {
        try claims.withLock { (claims: inout Claims) throws(BlockError) in
            try apply(claim, as: token.value, to: &claims)
        }
    }

    /// Drops a claim. Releasing only loosens locks, which cannot conflict.
    public func release(_ token: BlockClaimToken) {
        claims.withLock { claims in
            guard claims.byToken.removeValue(forKey: token.value) != nil else { return }
            let (required, shared) = claims.combined
            try? driver.permissionsChanged(required: required, shared: shared)
        }
    }

    /// The permissions all users together require and share.
    public var permissions: (required: BlockPermissions, shared: BlockPermissions) {
        claims.withLock { $0.combined }
    }

    private func apply(_ claim: BlockPermissionClaim, as token: UInt64, to claims: inout Claims) throws(BlockError) {
        for (other, existing) in claims.byToken where other != token {
            if let conflict = Self.conflict(on: name, requiring: claim, against: existing) { throw conflict }
            if let conflict = Self.conflict(on: name, requiring: existing, against: claim) { throw conflict }
        }
        let before = claims.combined
        let previous = claims.byToken.updateValue(claim, forKey: token)
        let after = claims.combined
        guard after != before else { return }
        do {
            try driver.permissionsChanged(required: after.required, shared: after.shared)
        } catch {
            claims.byToken[token] = previous
            throw error
        }
    }

    private static func conflict(on node: String, requiring a: BlockPermissionClaim, against b: BlockPermissionClaim) -> BlockError? {
        let denied = a.required.subtracting(b.shared)
        guard !denied.isEmpty else { return nil }
        return .permissionConflict(
            "Permission conflict on node '\(node)': permissions '\(denied.names)' are both required by "
                + "\(a.holder) (uses node '\(node)' as '\(a.role)' child) and unshared by "
                + "\(b.holder) (uses node '\(node)' as '\(b.role)' child).")
    }

    // MARK: Reporting

    /// `file` / `image.filename` of `query-named-block-nodes`.
    public var filename: BlockNodeFilename {
        driver.exactFilename.map(BlockNodeFilename.plain) ?? .json(driver.optionsDescription)
    }

    /// `image` of `query-named-block-nodes` (without the filename).
    public var imageInfo: BlockImageInfo {
        BlockImageInfo(
            format: driver.driverName, virtualSize: (try? refreshSize()) ?? size,
            actualSize: driver.allocatedSize(), dirtyFlag: driver.reportsDirtyFlag ? false : nil)
    }

    // MARK: Write threshold

    /// The armed threshold in bytes, 0 when disarmed (also after it fired).
    public var writeThreshold: UInt64 { threshold.load(ordering: .relaxed) }

    /// Arms (non-zero) or disarms (0) the threshold. Setting a value below what has already
    /// been written does not fire by itself: only a later request can.
    public func setWriteThreshold(_ value: UInt64) {
        threshold.store(value, ordering: .relaxed)
    }

    /// QEMU's check, run before a write-type request is issued: one relaxed load when
    /// disarmed; a compare-exchange makes concurrent writers fire it exactly once.
    @inline(__always)
    private func checkWriteThreshold(end: UInt64) {
        let armed = threshold.load(ordering: .relaxed)
        guard armed != 0, end > armed else { return }
        fireWriteThreshold(armed: armed, end: end)
    }

    private func fireWriteThreshold(armed: UInt64, end: UInt64) {
        guard threshold.compareExchange(expected: armed, desired: 0, ordering: .relaxed).exchanged else { return }
        eventSink.blockEvent(.writeThresholdExceeded(nodeName: name, amountExceeded: end - armed, threshold: armed))
    }

    // MARK: I/O

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        let length = UInt64(buffer.count)
        let start = statistics.start()
        do {
            try checkRange(offset: offset, length: length, writing: false)
            if isAligned(offset, length) {
                try driver.read(at: offset, into: buffer)
            } else {
                try withAlignedBounce(offset: offset, length: length) { bounce, delta throws(BlockError) in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bounce[Int(delta)..<Int(delta) + buffer.count]))
                }
            }
            statistics.finish(.read, bytes: length, since: start)
        } catch {
            statistics.fail(.read, error: error)
            throw error
        }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags = []) throws(BlockError) {
        let length = UInt64(buffer.count)
        let start = statistics.start()
        do {
            try checkWritable()
            try checkRange(offset: offset, length: length, writing: true)
            if isAligned(offset, length) {
                checkWriteThreshold(end: offset + length)
                defer { statistics.noteWriteEnd(offset + length) }
                try driver.write(at: offset, from: buffer, flags: flags)
            } else {
                let (alignedStart, alignedEnd) = alignedBounds(offset, length)
                checkWriteThreshold(end: alignedEnd)
                defer { statistics.noteWriteEnd(alignedEnd) }
                try withAlignedBounce(offset: offset, length: length) { bounce, delta throws(BlockError) in
                    UnsafeMutableRawBufferPointer(rebasing: bounce[Int(delta)..<Int(delta) + buffer.count]).copyMemory(from: buffer)
                    try driver.write(at: alignedStart, from: UnsafeRawBufferPointer(bounce), flags: flags)
                }
            }
            // Padding writes whole blocks: a growable node ends where the padded write did.
            noteGrowth(end: isAligned(offset, length) ? offset + length : alignUp(offset + length))
            statistics.finish(.write, bytes: length, since: start)
        } catch {
            statistics.fail(.write, error: error)
            throw error
        }
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags = []) throws(BlockError) {
        let start = statistics.start()
        do throws(BlockError) {
            try checkWritable()
            try checkRange(offset: offset, length: length, writing: true)
            var flags = flags
            if options.discard == .ignore { flags.remove(.mayUnmap) }
            if isAligned(offset, length) {
                checkWriteThreshold(end: offset + length)
                defer { statistics.noteWriteEnd(offset + length) }
                try driver.writeZeroes(at: offset, length: length, flags: flags)
            } else {
                // Read-modify-write of the head and tail is not fast.
                if flags.contains(.fastZero) { throw BlockError.notSupported("fast zero not possible on unaligned range") }
                // The aligned middle goes to the driver; the unaligned head and tail are
                // zeroed by read-modify-write.
                let end = offset + length
                checkWriteThreshold(end: alignUp(end))
                defer { statistics.noteWriteEnd(alignUp(end)) }
                let headEnd = min(alignUp(offset), end)
                let tailStart = max(alignDown(end), headEnd)
                if headEnd > offset { try zeroByRMW(offset: offset, length: headEnd - offset, flags: flags) }
                if tailStart > headEnd { try driver.writeZeroes(at: headEnd, length: tailStart - headEnd, flags: flags) }
                if end > tailStart { try zeroByRMW(offset: tailStart, length: end - tailStart, flags: flags) }
            }
            noteGrowth(end: isAligned(offset, length) ? offset + length : alignUp(offset + length))
            statistics.finish(.write, bytes: length, since: start)
        } catch {
            statistics.fail(.write, error: error)
            throw error
        }
    }

    /// Discards (trims) a range. With `discard=ignore` the request is dropped silently, before
    /// the write threshold sees it, as QEMU does.
    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {
        try checkWritable()
        try checkRange(offset: offset, length: length, writing: false)
        guard options.discard == .unmap else { return }
        // Only the aligned part can be discarded: discard is a hint.
        let start = alignUp(offset)
        let end = alignDown(offset + length)
        guard end > start else { return }
        let begin = statistics.start()
        checkWriteThreshold(end: end)
        do {
            try driver.discard(at: start, length: end - start)
            statistics.finish(.unmap, bytes: end - start, since: begin)
        } catch {
            statistics.fail(.unmap, error: error)
            throw error
        }
    }

    public func flush() throws(BlockError) {
        guard !options.cacheNoFlush else { return }
        let start = statistics.start()
        do {
            try driver.flush()
            statistics.finish(.flush, bytes: 0, since: start)
        } catch {
            statistics.fail(.flush, error: error)
            throw error
        }
    }

    public func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        try checkRange(offset: offset, length: length, writing: false)
        guard length > 0 else { return [] }
        return try driver.blockStatus(at: offset, length: length)
    }

    // MARK: Validation

    private func checkWritable() throws(BlockError) {
        if isReadOnly { throw .readOnly }
    }

    private func checkRange(offset: UInt64, length: UInt64, writing: Bool) throws(BlockError) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow { throw .outOfRange(offset: offset, length: length, size: size) }
        if end <= size { return }
        if writing && driver.capabilities.growable { return }
        // The size may have changed underneath (a grown device): look again before failing.
        let fresh = try refreshSize()
        if end <= fresh { return }
        throw writing ? .noSpace : .outOfRange(offset: offset, length: length, size: fresh)
    }

    private func noteGrowth(end: UInt64) {
        guard driver.capabilities.growable else { return }
        var current = cachedSize.load(ordering: .relaxed)
        while end > current {
            let (exchanged, original) = cachedSize.compareExchange(expected: current, desired: end, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    // MARK: Alignment

    @inline(__always)
    private func isAligned(_ offset: UInt64, _ length: UInt64) -> Bool {
        alignment == 1 || (offset % alignment == 0 && length % alignment == 0)
    }

    private func alignDown(_ value: UInt64) -> UInt64 { value - value % alignment }
    private func alignUp(_ value: UInt64) -> UInt64 { alignDown(value + alignment - 1) }
    private func alignedBounds(_ offset: UInt64, _ length: UInt64) -> (UInt64, UInt64) {
        (alignDown(offset), alignUp(offset + length))
    }

    /// Reads the aligned range around a request into a bounce buffer and hands it over with
    /// the request's position inside it.
    private func withAlignedBounce(
        offset: UInt64, length: UInt64,
        _ body: (UnsafeMutableRawBufferPointer, UInt64) throws(BlockError) -> Void
    ) throws(BlockError) {
        let (alignedStart, alignedEnd) = alignedBounds(offset, length)
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(alignedEnd - alignedStart), alignment: 4096)
        defer { bounce.deallocate() }
        // A growable node may be shorter than the aligned range: what lies past the end reads
        // as zeroes. Only aligned-size reads reach the driver, which zero-fills past its EOF.
        let readableEnd = min(alignedEnd, max(alignUp(size), alignedStart))
        bounce.initializeMemory(as: UInt8.self, repeating: 0)
        if readableEnd > alignedStart {
            try driver.read(at: alignedStart, into: UnsafeMutableRawBufferPointer(rebasing: bounce[0..<Int(readableEnd - alignedStart)]))
        }
        try body(bounce, offset - alignedStart)
    }

    private func zeroByRMW(offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        try withAlignedBounce(offset: offset, length: length) { bounce, delta throws(BlockError) in
            UnsafeMutableRawBufferPointer(rebasing: bounce[Int(delta)..<Int(delta + length)]).initializeMemory(as: UInt8.self, repeating: 0)
            try driver.write(at: alignDown(offset), from: UnsafeRawBufferPointer(bounce), flags: flags.subtracting([.mayUnmap, .fastZero]))
        }
    }
}
