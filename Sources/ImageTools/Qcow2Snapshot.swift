import BlockCore
import BlockDrivers

/// One entry of the internal snapshot table.
public struct Qcow2Snapshot: Equatable, Sendable {
    public var l1TableOffset: UInt64
    public var l1Size: UInt32
    public var id: String
    public var name: String
    public var dateSeconds: UInt32
    public var dateNanoseconds: UInt32
    public var vmClockNanoseconds: UInt64
    public var vmStateSize: UInt64
    /// Instruction count at the snapshot; nil when the entry does not record it.
    public var icount: UInt64?

    /// Reads `count` entries at `offset`; also returns the table's size in bytes.
    static func readTable(from file: ImageFile, at offset: UInt64, count: Int) throws(BlockError) -> (snapshots: [Qcow2Snapshot], bytes: UInt64) {
        var snapshots: [Qcow2Snapshot] = []
        var position = offset
        for _ in 0..<count {
            let fixed = Qcow2ByteReader(try file.read(at: position, count: 40))
            let idLength = Int(fixed.u32(12) >> 16)
            let nameLength = Int(fixed.u32(12) & 0xffff)
            let extraLength = Int(fixed.u32(36))
            let variable = Qcow2ByteReader(try file.read(at: position + 40, count: extraLength + idLength + nameLength))
            var snapshot = Qcow2Snapshot(
                l1TableOffset: fixed.u64(0), l1Size: fixed.u32(8),
                id: String(decoding: variable.bytes(extraLength, idLength), as: UTF8.self),
                name: String(decoding: variable.bytes(extraLength + idLength, nameLength), as: UTF8.self),
                dateSeconds: fixed.u32(16), dateNanoseconds: fixed.u32(20), vmClockNanoseconds: fixed.u64(24),
                vmStateSize: UInt64(fixed.u32(32)), icount: nil)
            if extraLength >= 8 { snapshot.vmStateSize = variable.u64(0) }
            if extraLength >= 24 {
                let icount = variable.u64(16)
                snapshot.icount = icount == .max ? nil : icount
            }
            snapshots.append(snapshot)
            position += UInt64((40 + extraLength + idLength + nameLength + 7) / 8 * 8)
        }
        return (snapshots, position - offset)
    }
}
