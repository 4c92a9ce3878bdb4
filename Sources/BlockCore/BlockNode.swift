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
    /// The classic threshold (`block-set-write-threshold`) fired.
    case writeThresholdExceeded(nodeName: String, amountExceeded: UInt64, threshold: UInt64)
    /// A named threshold fired.
    case namedWriteThresholdExceeded(WriteThresholdCrossing)
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
    /// The classic threshold, 0 when disarmed.
    private let threshold = Atomic<UInt64>(0)
    /// The lowest value any threshold, classic or named, is armed at (`UInt64.max` when none):
    /// the only thing the write path loads. Stored only with `namedThresholds` locked.
    private let thresholdTrigger = Atomic<UInt64>(.max)
    private let namedThresholds = Mutex(NamedWriteThresholds())
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
        let previous = cachedSize.exchange(size, ordering: .relaxed)
        // A growable node also grows with its writes, which are no resize (see `truncate`).
        if previous != size, !driver.capabilities.growable { writeThresholdsResized(to: size) }
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
        let previous = size
        let resized = try refreshSize()
        if previous != resized, driver.capabilities.growable { writeThresholdsResized(to: resized) }
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

    // MARK: Write thresholds

    /// The armed classic threshold in bytes, 0 when disarmed (also after it fired).
    public var writeThreshold: UInt64 { threshold.load(ordering: .relaxed) }

    /// Arms (non-zero) or disarms (0) the classic threshold. Setting a value below what has
    /// already been written does not fire by itself: only a later request can.
    public func setWriteThreshold(_ value: UInt64) {
        threshold.store(value, ordering: .relaxed)
        namedThresholds.withLock { updateThresholdTrigger($0) }
    }

    /// The lowest armed value of any threshold, `UInt64.max` when none is armed: requests
    /// ending at or below it take the fast path.
    var lowestArmedThreshold: UInt64 { thresholdTrigger.load(ordering: .relaxed) }

    /// The named thresholds, in the order they were first set.
    public var namedWriteThresholds: [NamedWriteThreshold] { namedThresholds.withLock { $0.thresholds } }

    /// Sets the named threshold `name` (replacing one of that name), armed; with
    /// `fireIfPast` it fires at once when the highest written offset is already past it.
    /// Named thresholds are independent of each other and of the classic one.
    ///
    /// A percentage needs a node whose size only changes by resizing: a growable node (a
    /// regular file) grows with its writes, and the threshold would run ahead of them.
    public func setNamedWriteThreshold(_ name: String, _ settings: WriteThresholdSettings) throws(BlockError) {
        if settings.level.percent != nil, driver.capabilities.growable {
            throw .invalidArgument("Node '\(self.name)' grows with its writes: give its threshold in bytes")
        }
        let currentSize = (try? refreshSize()) ?? size
        let highestOffset = statistics.writeHighestOffset
        let firing = namedThresholds.withLock { named in
            defer { updateThresholdTrigger(named) }
            return named.set(name, settings, size: currentSize, highestOffset: highestOffset)
        }
        report(firing.map { [$0] } ?? [], size: currentSize, highestOffset: highestOffset)
    }

    /// Removes the named threshold `name`; false when the node has none of that name.
    public func clearNamedWriteThreshold(_ name: String) -> Bool {
        namedThresholds.withLock { named in
            defer { updateThresholdTrigger(named) }
            return named.clear(name)
        }
    }

    /// QEMU's check, run before a write-type request is issued: one relaxed load of the
    /// lowest armed value, whatever is armed.
    @inline(__always)
    private func checkWriteThreshold(end: UInt64) {
        guard end > thresholdTrigger.load(ordering: .relaxed) else { return }
        requestCrossesThreshold(end: end)
    }

    /// The slow path. The classic threshold is disarmed with a compare-exchange, so that of
    /// concurrent writers exactly one fires it, as in QEMU; named ones under the lock.
    private func requestCrossesThreshold(end: UInt64) {
        let classic = threshold.load(ordering: .relaxed)
        if classic != 0, end > classic,
           threshold.compareExchange(expected: classic, desired: 0, ordering: .relaxed).exchanged {
            eventSink.blockEvent(.writeThresholdExceeded(nodeName: name, amountExceeded: end - classic, threshold: classic))
        }
        let firings = namedThresholds.withLock { named in
            defer { updateThresholdTrigger(named) }
            return named.requestEnds(at: end)
        }
        report(firings, size: size, highestOffset: max(statistics.writeHighestOffset, end))
    }

    /// The node's size changed: percentages are recomputed, re-arming thresholds armed again.
    private func writeThresholdsResized(to size: UInt64) {
        let highestOffset = statistics.writeHighestOffset
        let firings = namedThresholds.withLock { named in
            defer { updateThresholdTrigger(named) }
            return named.isEmpty ? [] : named.resized(to: size, highestOffset: highestOffset)
        }
        report(firings, size: size, highestOffset: highestOffset)
    }

    /// Recomputes the trigger from both kinds of threshold. Called with `namedThresholds`
    /// locked after every change to either, so the last store sees the last change.
    private func updateThresholdTrigger(_ named: borrowing NamedWriteThresholds) {
        let classic = threshold.load(ordering: .relaxed)
        thresholdTrigger.store(min(classic == 0 ? .max : classic, named.lowestArmedValue), ordering: .relaxed)
    }

    private func report(_ firings: [NamedWriteThresholds.Firing], size: UInt64, highestOffset: UInt64) {
        for firing in firings {
            eventSink.blockEvent(.namedWriteThresholdExceeded(WriteThresholdCrossing(
                nodeName: name, name: firing.threshold.name, threshold: firing.threshold.value,
                amountExceeded: firing.amountExceeded, settings: firing.threshold.settings, cause: firing.cause,
                nodeSize: size, highestOffset: highestOffset)))
        }
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
