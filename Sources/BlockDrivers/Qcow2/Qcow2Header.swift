import BlockCore

/// The qcow2 header (cluster 0): fixed fields, header extensions and the backing file
/// name, parsed and validated against what this driver supports and against the file size.
public struct Qcow2Header: Sendable, Equatable {
    public static let magic: UInt32 = 0x5146_49fb
    public static let v2Length = 72
    public static let v3MinimumLength = 104

    /// Byte offsets of the fields this driver rewrites.
    enum Field {
        static let refcountTableOffset: UInt64 = 48
        static let incompatibleFeatures: UInt64 = 72
        static let autoclearFeatures: UInt64 = 88
    }

    public enum Incompatible {
        public static let dirty: UInt64 = 1 << 0
        public static let corrupt: UInt64 = 1 << 1
        public static let externalDataFile: UInt64 = 1 << 2
        public static let compressionType: UInt64 = 1 << 3
        public static let extendedL2: UInt64 = 1 << 4
        public static let supported: UInt64 = dirty | corrupt | compressionType
    }

    public enum Compatible {
        public static let lazyRefcounts: UInt64 = 1 << 0
    }

    public enum ExtensionType {
        public static let end: UInt32 = 0
        public static let backingFormat: UInt32 = 0xe279_2aca
        public static let featureNames: UInt32 = 0x6803_f857
        public static let dataFile: UInt32 = 0x4441_5441
    }

    /// Limits QEMU also enforces (they keep tables in memory).
    public enum Limit {
        public static let l1Bytes: UInt64 = 32 << 20
        public static let refcountTableBytes: UInt64 = 8 << 20
        public static let snapshots: UInt32 = 65536
        public static let hostOffsetBits = 56
    }

    public internal(set) var version: UInt32
    public internal(set) var backingFileOffset: UInt64
    public internal(set) var backingFileSize: UInt32
    public internal(set) var clusterBits: Int
    public internal(set) var size: UInt64
    public internal(set) var cryptMethod: UInt32
    public internal(set) var l1Size: UInt32
    public internal(set) var l1TableOffset: UInt64
    public internal(set) var refcountTableOffset: UInt64
    public internal(set) var refcountTableClusters: UInt32
    public internal(set) var snapshotCount: UInt32
    public internal(set) var snapshotsOffset: UInt64
    public internal(set) var incompatibleFeatures: UInt64 = 0
    public internal(set) var compatibleFeatures: UInt64 = 0
    public internal(set) var autoclearFeatures: UInt64 = 0
    public internal(set) var refcountOrder: Int = 4
    public internal(set) var headerLength: UInt32
    public internal(set) var compressionType: UInt8 = 0
    public internal(set) var backingFile: String?
    public internal(set) var backingFormat: String?
    /// Names from the feature name table, for error messages: (kind, bit) → name.
    public internal(set) var featureNames: [Qcow2FeatureName] = []

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }

    /// Parses the start of the file (at least the whole of cluster 0 when the file has it).
    /// `fileSize` bounds every offset the header gives.
    public init(parsing bytes: [UInt8], fileSize: UInt64) throws(BlockError) {
        var reader = Qcow2ByteReader(bytes)
        guard bytes.count >= Self.v2Length, reader.u32(0) == Self.magic else {
            throw .invalidArgument("Image is not in qcow2 format")
        }
        version = reader.u32(4)
        guard version == 2 || version == 3 else {
            throw .notSupported("Unsupported qcow2 version \(version)")
        }
        backingFileOffset = reader.u64(8)
        backingFileSize = reader.u32(16)
        let bits = reader.u32(20)
        guard bits >= 9, bits <= 21 else { throw .invalidArgument("Unsupported cluster size: 2^\(bits)") }
        clusterBits = Int(bits)
        size = reader.u64(24)
        cryptMethod = reader.u32(32)
        l1Size = reader.u32(36)
        l1TableOffset = reader.u64(40)
        refcountTableOffset = reader.u64(48)
        refcountTableClusters = reader.u32(56)
        snapshotCount = reader.u32(60)
        snapshotsOffset = reader.u64(64)
        headerLength = UInt32(Self.v2Length)
        if version == 3 {
            guard bytes.count >= Self.v3MinimumLength else { throw .invalidArgument("qcow2 header too short") }
            incompatibleFeatures = reader.u64(72)
            compatibleFeatures = reader.u64(80)
            autoclearFeatures = reader.u64(88)
            let order = reader.u32(96)
            guard order <= 6 else {
                throw .invalidArgument("Reference count entry width too large; may not exceed 64 bits")
            }
            refcountOrder = Int(order)
            headerLength = reader.u32(100)
            guard headerLength >= Self.v3MinimumLength else { throw .invalidArgument("qcow2 header too short") }
            guard UInt64(headerLength) <= clusterSize, Int(headerLength) <= bytes.count else {
                throw .invalidArgument("qcow2 header exceeds cluster size")
            }
            if headerLength > 104 { compressionType = reader.u8(104) }
        }
        if backingFileOffset != 0 {
            guard backingFileOffset <= clusterSize, backingFileSize <= 1023,
                  backingFileOffset + UInt64(backingFileSize) <= min(clusterSize, UInt64(bytes.count)),
                  backingFileOffset >= UInt64(headerLength)
            else { throw .invalidArgument("Invalid backing file offset") }
            let start = Int(backingFileOffset)
            backingFile = String(decoding: bytes[start..<start + Int(backingFileSize)], as: UTF8.self)
        }
        try parseExtensions(&reader, fileSize: fileSize)
        try validate(fileSize: fileSize)
    }

    private mutating func parseExtensions(_ reader: inout Qcow2ByteReader, fileSize: UInt64) throws(BlockError) {
        // Extensions run from the end of the header to the backing file name (or the end
        // of cluster 0).
        var offset = Int(headerLength)
        let end = Int(min(backingFileOffset != 0 ? backingFileOffset : clusterSize, UInt64(reader.count)))
        while offset + 8 <= end {
            let type = reader.u32(offset)
            let length = Int(reader.u32(offset + 4))
            if type == ExtensionType.end { return }
            let dataStart = offset + 8
            guard length <= end - dataStart else { throw .invalidArgument("header extension too large") }
            switch type {
            case ExtensionType.backingFormat:
                guard length < 16 else { throw .invalidArgument("ERROR: ext_backing_format: len=\(length) too large (>=16)") }
                backingFormat = String(decoding: reader.bytes(dataStart, length), as: UTF8.self)
            case ExtensionType.featureNames:
                for entry in stride(from: dataStart, to: dataStart + length - 47, by: 48) {
                    let name = reader.bytes(entry + 2, 46).prefix { $0 != 0 }
                    featureNames.append(Qcow2FeatureName(kind: reader.u8(entry), bit: reader.u8(entry + 1), name: String(decoding: name, as: UTF8.self)))
                }
            default:
                break
            }
            offset = dataStart + (length + 7) / 8 * 8
        }
    }

    private func validate(fileSize: UInt64) throws(BlockError) {
        let unsupported = incompatibleFeatures & ~Incompatible.supported
        if unsupported & Incompatible.externalDataFile != 0 {
            throw .notSupported("Images with an external data file are not supported")
        }
        if unsupported & Incompatible.extendedL2 != 0 {
            throw .notSupported("Images with extended L2 entries (subclusters) are not supported")
        }
        if unsupported != 0 { throw .notSupported("Unsupported qcow2 feature(s): " + featureList(unsupported)) }
        if cryptMethod != 0 { throw .notSupported("Encrypted qcow2 images are not supported") }
        if compressionType > 1 { throw .notSupported("Unknown compression type '\(compressionType)'") }
        if (compressionType != 0) != (incompatibleFeatures & Incompatible.compressionType != 0) {
            throw .invalidArgument("compression_type field and the compression type incompatible feature bit do not agree")
        }
        guard size <= 1 << 62 else { throw .invalidArgument("Image is too big") }

        let l2Entries = clusterSize / 8
        let l1Needed = (size + clusterSize * l2Entries - 1) / (clusterSize * l2Entries)
        guard UInt64(l1Size) * 8 <= Limit.l1Bytes else { throw .invalidArgument("Active L1 table too large") }
        guard UInt64(l1Size) >= l1Needed else { throw .invalidArgument("L1 table is too small") }
        if l1Size > 0 {
            try checkTable(offset: l1TableOffset, bytes: UInt64(l1Size) * 8, fileSize: fileSize, name: "L1 table")
        }
        guard refcountTableClusters > 0 else { throw .invalidArgument("Image does not contain a reference count table") }
        let refcountTableBytes = UInt64(refcountTableClusters) * clusterSize
        guard refcountTableBytes <= Limit.refcountTableBytes else { throw .invalidArgument("Reference count table too large") }
        try checkTable(offset: refcountTableOffset, bytes: refcountTableBytes, fileSize: fileSize, name: "reference count table")
        guard snapshotCount <= Limit.snapshots else { throw .invalidArgument("Snapshot table too large") }
        if snapshotCount > 0 {
            // Each entry is at least 40 bytes.
            try checkTable(offset: snapshotsOffset, bytes: UInt64(snapshotCount) * 40, fileSize: fileSize, name: "snapshot table")
        }
    }

    private func checkTable(offset: UInt64, bytes: UInt64, fileSize: UInt64, name: String) throws(BlockError) {
        guard offset % clusterSize == 0, offset != 0, offset < 1 << UInt64(Limit.hostOffsetBits),
              offset + bytes <= fileSize
        else { throw .invalidArgument("Invalid \(name) offset") }
    }

    /// QEMU's listing: names from the image's feature table, then what remains as a mask.
    private func featureList(_ mask: UInt64) -> String {
        var remaining = mask
        var parts: [String] = []
        for entry in featureNames where entry.kind == 0 && entry.bit < 64 && remaining & (1 << UInt64(entry.bit)) != 0 {
            parts.append(entry.name)
            remaining &= ~(1 << UInt64(entry.bit))
        }
        if remaining != 0 { parts.append("Unknown incompatible feature: " + String(remaining, radix: 16)) }
        return parts.joined(separator: ", ")
    }
}

/// One entry of the feature name table extension.
public struct Qcow2FeatureName: Sendable, Equatable {
    public var kind: UInt8
    public var bit: UInt8
    public var name: String
}

/// Big-endian field access on a byte array; reads past the end give zeroes.
public struct Qcow2ByteReader {
    private let storage: [UInt8]
    public init(_ bytes: [UInt8]) { storage = bytes }
    public var count: Int { storage.count }

    public func u8(_ offset: Int) -> UInt8 { offset < storage.count ? storage[offset] : 0 }
    public func u32(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(u8(offset + $1)) } }
    public func u64(_ offset: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(u8(offset + $1)) } }
    public func bytes(_ offset: Int, _ count: Int) -> ArraySlice<UInt8> {
        storage[min(offset, storage.count)..<min(offset + count, storage.count)]
    }
}

extension Array where Element == UInt8 {
    /// Big-endian encoding of a 64-bit value.
    public init(bigEndian value: UInt64) {
        self = (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * $0)) }
    }

    public init(bigEndian value: UInt32) {
        self = (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * $0)) }
    }
}
