import BlockCore
import BlockDrivers

/// Writes a new, empty qcow2 image exactly as `qemu-img create` does: cluster 0 with the
/// header, its extensions and the backing file name; the refcount table and blocks; a
/// zeroed L1 table (see `Qcow2CreationLayout` for where they go).
struct Qcow2ImageBuilder {
    var version: UInt32 = 3
    var clusterBits = 16
    var refcountOrder = 4
    /// Virtual size in bytes (a multiple of 512).
    var size: UInt64
    var lazyRefcounts = false
    /// 0 zlib, 1 zstd.
    var compressionType: UInt8 = 0
    var backingFile: String?
    var backingFormat: String?

    private var clusterSize: UInt64 { 1 << UInt64(clusterBits) }

    /// L1 entries for the virtual size; fails like QEMU when the table would be too large.
    func l1Entries() throws(ImageToolError) -> UInt64 {
        let bytesPerL1Entry = clusterSize * (clusterSize / 8)
        let entries = size / bytesPerL1Entry + (size % bytesPerL1Entry == 0 ? 0 : 1)
        guard entries * 8 <= Qcow2Header.Limit.l1Bytes else {
            throw ImageToolError("The image size is too large for file format 'qcow2' (try using a larger cluster size)")
        }
        return entries
    }

    func layout() throws(ImageToolError) -> Qcow2CreationLayout {
        let entries = try l1Entries()
        do {
            return try Qcow2CreationLayout(clusterBits: clusterBits, refcountOrder: refcountOrder, l1Entries: entries)
        } catch {
            throw ImageToolError("Creating an image of this size needs a larger refcount table, which is not supported (try a larger cluster size)")
        }
    }

    /// Cluster 0. Like qemu-img, the feature name table is only written with clusters above
    /// 4 KiB (observed; it would leave small clusters little room for a backing file name).
    func clusterZero(layout: Qcow2CreationLayout) throws(ImageToolError) -> [UInt8] {
        let headerLength = version == 2 ? Qcow2Header.v2Length : 112
        var extensions: [UInt8] = []
        if let backingFormat {
            extensions += Self.headerExtension(Qcow2Header.ExtensionType.backingFormat, Array(backingFormat.utf8))
        }
        if version >= 3 && clusterSize > 4096 {
            extensions += Self.headerExtension(Qcow2Header.ExtensionType.featureNames, Self.featureNames)
        }
        extensions += [UInt8](repeating: 0, count: 8)
        let name = Array((backingFile ?? "").utf8)
        if let backingFile {
            let reason = name.count > 1023 ? "Invalid argument"
                : headerLength + extensions.count + name.count > Int(clusterSize) ? "No space left on device" : nil
            if let reason {
                throw ImageToolError("Could not assign backing file '\(backingFile)' with format '\(backingFormat ?? "")': \(reason)")
            }
        }

        var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
        func put(_ value: [UInt8], at offset: Int) { bytes.replaceSubrange(offset..<offset + value.count, with: value) }
        let nameOffset = headerLength + extensions.count
        put([UInt8](bigEndian: Qcow2Header.magic), at: 0)
        put([UInt8](bigEndian: version), at: 4)
        if backingFile != nil {
            put([UInt8](bigEndian: UInt64(nameOffset)), at: 8)
            put([UInt8](bigEndian: UInt32(name.count)), at: 16)
        }
        put([UInt8](bigEndian: UInt32(clusterBits)), at: 20)
        put([UInt8](bigEndian: size), at: 24)
        put([UInt8](bigEndian: UInt32(layout.l1Entries)), at: 36)
        put([UInt8](bigEndian: layout.l1Offset), at: 40)
        put([UInt8](bigEndian: clusterSize), at: 48)
        put([UInt8](bigEndian: UInt32(1)), at: 56)
        if version >= 3 {
            put([UInt8](bigEndian: compressionType != 0 ? Qcow2Header.Incompatible.compressionType : 0), at: 72)
            put([UInt8](bigEndian: lazyRefcounts ? Qcow2Header.Compatible.lazyRefcounts : 0), at: 80)
            put([UInt8](bigEndian: UInt32(refcountOrder)), at: 96)
            put([UInt8](bigEndian: UInt32(headerLength)), at: 100)
            bytes[104] = compressionType
        }
        put(extensions, at: headerLength)
        put(name, at: nameOffset)
        return bytes
    }

    /// Writes the image into `file` (already open for writing; truncated here).
    func write(to file: ImageFile) throws(ImageToolError) {
        let layout = try layout()
        let header = try clusterZero(layout: layout)
        try ImageToolError.plain { () throws(BlockError) in
            try file.truncate(to: 0)
            try file.write(at: 0, header)
            try file.write(at: clusterSize, layout.refcountTableBytes)
            for block in layout.refcountBlockContents { try file.write(at: block.offset, block.bytes) }
            // The L1 table is written out, zeroes and all (it occupies disk space in
            // QEMU's images too).
            var written: UInt64 = 0
            let total = layout.l1Entries * 8
            while written < total {
                let chunk = min(total - written, 1 << 20)
                try file.write(at: layout.l1Offset + written, [UInt8](repeating: 0, count: Int(chunk)))
                written += chunk
            }
            try file.flush()
        }
    }

    private static func headerExtension(_ type: UInt32, _ data: [UInt8]) -> [UInt8] {
        [UInt8](bigEndian: type) + [UInt8](bigEndian: UInt32(data.count)) + data
            + [UInt8](repeating: 0, count: (8 - data.count % 8) % 8)
    }

    /// The feature name table QEMU writes: (type, bit, name) for every feature it knows.
    private static let featureNames: [UInt8] = {
        let features: [(UInt8, UInt8, String)] = [
            (0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"),
            (0, 3, "compression type"), (0, 4, "extended L2 entries"),
            (1, 0, "lazy refcounts"), (2, 0, "bitmaps"), (2, 1, "raw external data"),
        ]
        return features.flatMap { type, bit, name in
            [type, bit] + Array(name.utf8) + [UInt8](repeating: 0, count: 46 - name.utf8.count)
        }
    }()
}
