/// A fixed number of metadata tables (L2 slices or refcount blocks) kept in memory as
/// their on-disk big-endian bytes, keyed by host offset, evicted least recently used first.
/// Writing dirty tables back is the owner's job: it knows the ordering rules.
public struct Qcow2TableCache {
    private struct Slot {
        var offset: UInt64
        var bytes: [UInt8]
        var isDirty: Bool
        var lastUse: UInt64
    }

    let tableBytes: Int
    let capacity: Int
    private var slots: [Slot] = []
    private var slotByOffset: [UInt64: Int] = [:]
    private var freeSlots: [Int] = []
    private var clock: UInt64 = 0

    init(tableBytes: Int, capacity: Int) {
        self.tableBytes = tableBytes
        self.capacity = max(1, capacity)
    }

    /// The slot holding the table at `offset`, marked as used now.
    mutating func slot(for offset: UInt64) -> Int? {
        guard let index = slotByOffset[offset] else { return nil }
        clock += 1
        slots[index].lastUse = clock
        return index
    }

    /// The least recently used table, to write back (if dirty) and drop before inserting.
    var evictionCandidate: (offset: UInt64, isDirty: Bool)? {
        guard slotByOffset.count >= capacity else { return nil }
        var best: Int?
        for index in slotByOffset.values where best == nil || slots[index].lastUse < slots[best!].lastUse {
            best = index
        }
        return best.map { (slots[$0].offset, slots[$0].isDirty) }
    }

    /// Adds a table; the cache must have room (see `evictionCandidate`).
    mutating func insert(offset: UInt64, bytes: [UInt8], isDirty: Bool) -> Int {
        precondition(bytes.count == tableBytes && slotByOffset[offset] == nil)
        clock += 1
        let slot = Slot(offset: offset, bytes: bytes, isDirty: isDirty, lastUse: clock)
        // Reuse a dropped slot's storage if there is one.
        if let free = freeSlots.popLast() {
            slots[free] = slot
            slotByOffset[offset] = free
            return free
        }
        slots.append(slot)
        slotByOffset[offset] = slots.count - 1
        return slots.count - 1
    }

    mutating func remove(offset: UInt64) {
        guard let index = slotByOffset.removeValue(forKey: offset) else { return }
        slots[index].isDirty = false
        freeSlots.append(index)
    }

    /// Drops every table (after an error, or when the owner reloads).
    mutating func removeAll() {
        slots.removeAll()
        slotByOffset.removeAll()
        freeSlots.removeAll()
    }

    var dirtyOffsets: [UInt64] {
        slotByOffset.compactMap { slots[$0.value].isDirty ? $0.key : nil }.sorted()
    }

    var hasDirtyTables: Bool { slotByOffset.values.contains { slots[$0].isDirty } }

    func isDirty(_ offset: UInt64) -> Bool { slotByOffset[offset].map { slots[$0].isDirty } ?? false }

    func bytes(at index: Int) -> [UInt8] { slots[index].bytes }

    mutating func markClean(_ offset: UInt64) {
        if let index = slotByOffset[offset] { slots[index].isDirty = false }
    }

    // MARK: Entries

    func uint64(slot: Int, index: Int) -> UInt64 {
        slots[slot].bytes.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) }
    }

    mutating func setUInt64(slot: Int, index: Int, _ value: UInt64) {
        slots[slot].isDirty = true
        slots[slot].bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: index * 8, as: UInt64.self) }
    }

    /// A refcount of `1 << order` bits; sub-byte widths are packed from the least
    /// significant bit.
    func refcount(slot: Int, index: Int, order: Int) -> UInt64 {
        slots[slot].bytes.withUnsafeBytes { Self.refcount(in: $0, index: index, order: order) }
    }

    mutating func setRefcount(slot: Int, index: Int, order: Int, _ value: UInt64) {
        slots[slot].isDirty = true
        slots[slot].bytes.withUnsafeMutableBytes { Self.setRefcount(in: $0, index: index, order: order, value) }
    }

    public static func refcount(in bytes: UnsafeRawBufferPointer, index: Int, order: Int) -> UInt64 {
        switch order {
        case 0, 1, 2:
            let bits = 1 << order
            let bitOffset = index * bits
            return UInt64(bytes[bitOffset / 8] >> UInt8(bitOffset % 8)) & ((1 << UInt64(bits)) - 1)
        case 3: return UInt64(bytes[index])
        case 4: return UInt64(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case 5: return UInt64(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
        default: return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        }
    }

    public static func setRefcount(in bytes: UnsafeMutableRawBufferPointer, index: Int, order: Int, _ value: UInt64) {
        switch order {
        case 0, 1, 2:
            let bits = 1 << order
            let bitOffset = index * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(bitOffset % 8)
            let byte = bytes[bitOffset / 8] & ~mask
            bytes[bitOffset / 8] = byte | (UInt8(truncatingIfNeeded: value) << UInt8(bitOffset % 8)) & mask
        case 3: bytes[index] = UInt8(truncatingIfNeeded: value)
        case 4: bytes.storeBytes(of: UInt16(truncatingIfNeeded: value).bigEndian, toByteOffset: index * 2, as: UInt16.self)
        case 5: bytes.storeBytes(of: UInt32(truncatingIfNeeded: value).bigEndian, toByteOffset: index * 4, as: UInt32.self)
        default: bytes.storeBytes(of: value.bigEndian, toByteOffset: index * 8, as: UInt64.self)
        }
    }
}
