import BlockCore

#if canImport(Glibc)
import Glibc
#endif

/// The fixed shape of an open image: cluster and table sizes, refcount width, how L2
/// entries decode.
public struct Qcow2Geometry: Sendable {
    public static let copiedFlag: UInt64 = 1 << 63
    public static let compressedFlag: UInt64 = 1 << 62
    public static let zeroFlag: UInt64 = 1
    /// Host cluster offset in L1 and L2 entries.
    public static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
    /// Refcount block offset in refcount table entries.
    public static let refcountTableOffsetMask: UInt64 = 0xffff_ffff_ffff_fe00
    /// Bits an L1 entry must not have.
    public static let l1ReservedMask: UInt64 = 0x7f00_0000_0000_01ff
    /// Bits a standard L2 entry must not have (bit 0 is the zero flag).
    public static let l2ReservedMask: UInt64 = 0x3f00_0000_0000_01fe

    let clusterBits: Int
    let clusterSize: UInt64
    /// Entries in an L2 table.
    let l2Entries: UInt64
    /// Entries in one cached L2 slice.
    let sliceEntries: UInt64
    let refcountOrder: Int
    let refcountBlockEntries: UInt64
    let virtualSize: UInt64
    let version: UInt32
    let compressionType: UInt8
    /// Compressed descriptors: bits below this are the host byte offset, the rest the
    /// count of additional 512-byte sectors.
    let compressedOffsetBits: Int

    init(header: Qcow2Header, sliceBytes: UInt64) {
        clusterBits = header.clusterBits
        clusterSize = header.clusterSize
        l2Entries = header.clusterSize / 8
        sliceEntries = sliceBytes / 8
        refcountOrder = header.refcountOrder
        refcountBlockEntries = (header.clusterSize * 8) >> UInt64(header.refcountOrder)
        virtualSize = header.size
        version = header.version
        compressionType = header.compressionType
        compressedOffsetBits = 62 - (header.clusterBits - 8)
    }

    var refcountBits: Int { 1 << refcountOrder }
    var maximumRefcount: UInt64 { refcountOrder == 6 ? .max : (1 << UInt64(refcountBits)) - 1 }
    var sliceBytes: UInt64 { sliceEntries * 8 }
    var supportsZeroFlag: Bool { version >= 3 }

    func clusterStart(_ offset: UInt64) -> UInt64 { offset & ~(clusterSize - 1) }
    func offsetInCluster(_ offset: UInt64) -> UInt64 { offset & (clusterSize - 1) }
    func clusterIndex(_ offset: UInt64) -> UInt64 { offset >> UInt64(clusterBits) }
    func clusterCount(bytes: UInt64) -> UInt64 { (bytes + clusterSize - 1) >> UInt64(clusterBits) }

    /// Decodes an L2 entry; `guestCluster` only serves error texts.
    func state(of entry: UInt64, guestCluster: UInt64) throws(BlockError) -> Qcow2ClusterState {
        if entry & Self.compressedFlag != 0 {
            let descriptor = entry & ~(Self.copiedFlag | Self.compressedFlag)
            let offset = descriptor & ((1 << UInt64(compressedOffsetBits)) - 1)
            let sectors = (descriptor >> UInt64(compressedOffsetBits)) + 1
            guard entry & Self.copiedFlag == 0 else { throw corruption("Compressed cluster entry with COPIED flag", guestCluster) }
            return .compressed(offset: offset, sectors: sectors)
        }
        if entry & Self.l2ReservedMask != 0 {
            throw corruption("Cluster allocation offset \(hex(entry & 0x00ff_ffff_ffff_ffff & ~Self.zeroFlag)) unaligned", guestCluster)
        }
        let host = entry & Self.offsetMask
        let copied = entry & Self.copiedFlag != 0
        if entry & Self.zeroFlag != 0 {
            guard supportsZeroFlag else { throw corruption("Zero cluster entry found in pre-v3 image", guestCluster) }
            return host == 0 ? .zeroPlain : .zeroAllocated(host: host, copied: copied)
        }
        if host == 0 {
            // QEMU accepts a lone COPIED flag on an unallocated entry.
            return .unallocated
        }
        return .normal(host: host, copied: copied)
    }

    func corruption(_ text: String, _ guestCluster: UInt64) -> BlockError {
        .system(errno: EIO, operation: "qcow2: \(text) (guest offset \(hex(guestCluster << UInt64(clusterBits))))")
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// What an L2 entry says about one guest cluster.
enum Qcow2ClusterState: Equatable, Sendable {
    /// Reads from the backing node, or zeroes without one.
    case unallocated
    /// Reads as zeroes; no host cluster.
    case zeroPlain
    /// Reads as zeroes; the host cluster stays referenced.
    case zeroAllocated(host: UInt64, copied: Bool)
    /// Data at `host`; `copied` (refcount exactly 1) allows writing in place.
    case normal(host: UInt64, copied: Bool)
    /// Compressed data starting at byte `offset`, spanning `sectors` 512-byte sectors
    /// counted from the sector that contains `offset`.
    case compressed(offset: UInt64, sectors: UInt64)

    /// The host cluster that holds this guest cluster's data and refcount, if any.
    var hostCluster: UInt64? {
        switch self {
        case .normal(let host, _), .zeroAllocated(let host, _): host
        default: nil
        }
    }

    /// Writes may go to the host cluster in place.
    var isWritableInPlace: Bool {
        if case .normal(_, true) = self { return true }
        return false
    }
}
