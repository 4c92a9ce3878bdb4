/// The orders in which QEMU's hash tables hand out keys. They decide what QSD prints first
/// (every JSON object it outputs is a QDict, printed in bucket order) and which error wins
/// when a request has several problems (checks iterate over QDicts, or over GLib hash tables
/// for leftover arguments). Copying them lets our output match QSD byte for byte.
public enum QEMUHashOrder {
    /// QDict has 512 buckets; iteration walks them in order, and within a bucket the most
    /// recently inserted key comes first. `members` are in insertion order.
    public static func qdictOrder<Value>(_ members: [(key: String, value: Value)]) -> [(key: String, value: Value)] {
        guard members.count > 1 else { return members }
        let ranked = members.indices.map { index in
            (bucket: qdictBucket(members[index].key), index: index)
        }
        let sorted = ranked.sorted { lhs, rhs in
            lhs.bucket != rhs.bucket ? lhs.bucket < rhs.bucket : lhs.index > rhs.index
        }
        return sorted.map { members[$0.index] }
    }

    /// The QDict bucket of `key` (QEMU's tdb-derived string hash modulo 512).
    static func qdictBucket(_ key: String) -> UInt32 {
        var value = 0x238F_13AF &* UInt32(truncatingIfNeeded: key.utf8.count)
        for (offset, byte) in key.utf8.enumerated() {
            value = value &+ (UInt32(byte) << UInt32(offset * 5 % 24))
        }
        return (1_103_515_243 &* value &+ 12345) % 512
    }

    /// The order in which a GLib hash table of strings (GLib 2.74's `g_str_hash`, open
    /// addressing with quadratic probing) iterates `keys` after they were inserted in the
    /// given order. QEMU's QAPI input visitor reports the first leftover argument of a
    /// command in this order ("Parameter 'x' is unexpected").
    ///
    /// Exact for up to 7 keys, which fit GLib's initial 8-slot table; for more, GLib grows
    /// the table in place in a way this does not reproduce, and the keys are instead placed
    /// into a table big enough from the start (still a fixed, plausible order).
    public static func glibOrder(_ keys: [String]) -> [String] {
        // GLib keeps the table at most 15/16 full and grows it to about 4/3 of its entries.
        var shift = 3
        if keys.count >= 8 {
            while (1 << shift) < keys.count * 4 / 3 + keys.count / 16 + 1 { shift += 1 }
        }
        let size = 1 << shift
        let primeModulus = [1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191,
                            16381, 32749, 65521, 131071, 262139, 524287, 1048573, 2097143][shift]
        var slots = [String?](repeating: nil, count: size)
        for key in keys {
            var hash: UInt32 = 5381
            for byte in key.utf8 {
                // g_str_hash reads the bytes as signed chars.
                hash = hash &* 33 &+ UInt32(bitPattern: Int32(Int8(bitPattern: byte)))
            }
            if hash < 2 { hash = 2 }  // 0 and 1 mark free and deleted slots
            var index = Int((hash &* 11) % UInt32(primeModulus))
            var step = 0
            while let occupant = slots[index], occupant != key {
                step += 1
                index = (index + step) & (size - 1)
            }
            slots[index] = key
        }
        return slots.compactMap { $0 }
    }
}
