import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

@Suite struct Qcow2ReadTests {
    let fixture = Qcow2Fixture()

    /// Cluster sizes, compat levels and refcount widths that QEMU can create.
    static let formats: [String] = [
        "cluster_size=512,compat=0.10", "cluster_size=512,compat=1.1",
        "cluster_size=4096,compat=0.10", "cluster_size=4096,compat=1.1",
        "cluster_size=65536,compat=0.10", "cluster_size=65536,compat=1.1",
        "cluster_size=2097152,compat=1.1", "cluster_size=2097152,compat=0.10",
        "refcount_bits=1", "refcount_bits=2", "refcount_bits=4", "refcount_bits=8", "refcount_bits=32", "refcount_bits=64",
    ]

    /// Data, unaligned data, zeroes and a discard written by qemu-io.
    func populate(_ image: String) throws {
        try fixture.qemuIO(
            image, "write -P 0x11 0 64k", "write -P 0x22 100k 3k", "write -P 0x44 1000k 200k", "write -z 1M 128k",
            "write -P 0x55 2M 64k", "discard 2M 64k", "write -P 0x33 3M 512", "write -P 0x66 4193792 512")
    }

    @Test(arguments: formats)
    func readsWhatQemuWrote(format: String) throws {
        let image = try fixture.create("a.qcow2", options: format)
        try populate(image)
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        #expect(node.size == 4 << 20)
        let expected = try fixture.qemuContents(image)
        #expect(try node.readAll() == expected)
        // Unaligned pieces across cluster boundaries.
        for (offset, count) in [(99 * 1024 + 7, 5000), (1_000_000, 300_000), (4_194_000, 304), (0, 1)] {
            #expect(try node.read(at: UInt64(offset), count: count) == Array(expected[offset..<offset + count]))
        }
    }

    @Test(arguments: ["zlib", "zstd"])
    func readsCompressedClusters(type: String) throws {
        let raw = fixture.path("source.raw")
        var bytes = [UInt8](repeating: 0, count: 2 << 20)
        var generator = SeededGenerator(state: 7)
        for index in stride(from: 0, to: bytes.count, by: 4096) where index % 12288 != 0 {
            // Compressible but not trivial: runs of a random byte with some noise.
            let value = UInt8.random(in: 0...255, using: &generator)
            for offset in index..<index + 4096 { bytes[offset] = offset % 97 == 0 ? UInt8(truncatingIfNeeded: offset) : value }
        }
        _ = FileManager.default.createFile(atPath: raw, contents: Data(bytes))
        let image = fixture.path("c.qcow2")
        for clusterSize in ["4096", "65536"] {
            try fixture.tool("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=\(clusterSize),compression_type=\(type)", raw, image)
            let node = try fixture.open(image, readOnly: true)
            defer { node.closeChain() }
            #expect(try node.readAll() == bytes)
            #expect(try node.read(at: 70000, count: 100_000) == Array(bytes[70000..<170_000]))
        }
    }

    @Test func readsThroughAThreeDeepBackingChain() throws {
        let base = fixture.path("base.raw")
        _ = FileManager.default.createFile(atPath: base, contents: Data([UInt8](repeating: 0xAB, count: 3 << 20)))
        let middle = try fixture.create("middle.qcow2", options: "cluster_size=4096", backing: "base.raw", backingFormat: "raw")
        try fixture.qemuIO(middle, "write -P 0x01 0 8k", "write -z 64k 64k", "write -P 0x02 1M 5000")
        let top = try fixture.create("top.qcow2", size: "5M", options: "cluster_size=65536", backing: "middle.qcow2")
        try fixture.qemuIO(top, "write -P 0x03 4k 1k", "write -P 0x04 4M 64k", "discard 1M 64k")
        let node = try fixture.open(top, readOnly: true)
        defer { node.closeChain() }
        #expect(try node.readAll() == fixture.qemuContents(top))
        let info = try #require(node.driver as? Qcow2Driver).imageInfo
        #expect(info.backingFilename == "middle.qcow2")
        #expect(info.fullBackingFilename == fixture.path("middle.qcow2"))
        #expect(info.backingFormat == "qcow2")
        #expect(node.driver.children.map(\.role) == ["file", "backing"])
    }

    @Test func backingNullReadsZeroesAndANodeReferenceReplacesTheHeader() throws {
        let base = try fixture.create("base.qcow2")
        try fixture.qemuIO(base, "write -P 0x07 0 1M")
        let top = try fixture.create("top.qcow2", backing: "base.qcow2")
        try fixture.qemuIO(top, "write -P 0x08 512k 4k")
        let detached = try fixture.open(top, readOnly: true, backing: Qcow2Backing.none)
        #expect(try detached.read(at: 0, count: 4) == [0, 0, 0, 0])
        #expect(try detached.read(at: 512 * 1024, count: 2) == [8, 8])
        #expect(detached.driver.children.count == 1)
        detached.closeChain()

        let other = try fixture.create("other.qcow2")
        try fixture.qemuIO(other, "write -P 0x09 0 64k")
        let otherNode = try fixture.open(other, readOnly: true)
        let overridden = try fixture.open(top, readOnly: true, backing: .node(otherNode))
        #expect(try overridden.read(at: 0, count: 2) == [9, 9])
        #expect(overridden.driver.exactFilename == nil)
        overridden.driver.close()
        otherNode.closeChain()
    }

    @Test(arguments: ["cluster_size=65536,compat=1.1", "cluster_size=4096,compat=0.10"])
    func blockStatusMatchesQemuImgMap(format: String) throws {
        let base = try fixture.create("base.qcow2", options: format)
        try fixture.qemuIO(base, "write -P 1 256k 128k")
        let image = try fixture.create("a.qcow2", options: format, backing: "base.qcow2")
        try fixture.qemuIO(image, "write -P 0x11 0 64k", "write -z 1M 128k", "write -P 0x55 2M 64k", "write -P 0x33 3M 512")
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        #expect(try allExtents(node) == qemuMap(image))
    }

    /// Images can look metadata-preallocated to QEMU (clearly more clusters in use than the
    /// file has allocated, here thanks to compressed clusters): block status then asks the file about data clusters, and
    /// their holes (QEMU zeroes a fresh cluster before writing part of it) are zeroes, as
    /// `qemu-img map` shows. Reading the image first changes nothing: holes are not read.
    @Test(arguments: ["cluster_size=65536", "cluster_size=2097152", "cluster_size=65536,compat=0.10"])
    func holesInDataClustersOfPreallocatedLookingImagesReadAsZeroes(format: String) throws {
        let image = try fixture.create("a.qcow2", size: "8M", options: format)
        // Compressed clusters use little of the file; the partial writes leave holes.
        try fixture.qemuIO(image, "write -c -P 1 0 2M", "write -P 2 4M 512", "write -P 3 6M 5000")
        let expected = try qemuMap(image)
        #expect(expected.contains { !$0.isHole && $0.isZero }, "\(expected)")
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        #expect(try node.readAll() == fixture.qemuContents(image))
        #expect(try allExtents(node) == expected)
    }

    /// Images whose clusters are mostly allocated in the file do not: data clusters are data.
    @Test func dataClustersOfMostlyAllocatedImagesAreData() throws {
        let image = try fixture.create("a.qcow2", size: "64M")
        try fixture.qemuIO(image, "write -P 1 0 8M", "write -P 2 40M 512")
        let expected = try qemuMap(image)
        #expect(!expected.contains { !$0.isHole && $0.isZero }, "\(expected)")
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        #expect(try allExtents(node) == expected)
    }

    /// The guess is made once, possibly while writes allocate: clusters whose refcount is
    /// raised but whose data is not in the file yet (holes below a later allocation that
    /// finished first) must not count, or a fresh image would look metadata-preallocated
    /// for good.
    @Test func allocationsInFlightDoNotMakeAFreshImageLookPreallocated() throws {
        let image = try fixture.create("a.qcow2", size: "8M")
        let file = try fixture.fileNode(image)
        let header = try Qcow2Header(parsing: Qcow2DataSource.read(file, at: 0, count: 65536), fileSize: file.size)
        let geometry = Qcow2Geometry(header: header, sliceBytes: 4096)
        let source = Qcow2DataSource(file: file, backing: nil, geometry: geometry)
        var state = try Qcow2Metadata(
            header: header, geometry: geometry, source: source,
            l2CacheEntries: 16, refcountCacheEntries: 4, lazyRefcounts: false, passDiscard: (false, false, false))
        // Whole-cluster writes into fresh clusters: allocated, data not written yet...
        let data = [UInt8](repeating: 1, count: 65536)
        var allocations: [Qcow2Allocation] = []
        for cluster in 0..<4 {
            let step = try data.withUnsafeBytes { bytes in try state.writeStep(at: UInt64(cluster) * 2 * 65536, data: bytes) }
            guard case .allocate(let allocation) = step else {
                Issue.record("cluster \(cluster): \(step)")
                return
            }
            allocations.append(allocation)
        }
        // ...but for the last one, which extends the file past the others.
        let last = allocations[3]
        let needsFlush = try data.withUnsafeBytes { bytes in try source.writeAllocation(last, payload: bytes) }
        _ = state.endPendingAllocation(last)
        try state.finishAllocation(last, dataNeedsFlush: needsFlush)
        let preallocated = state.isMetadataPreallocated()
        #expect(!preallocated)
    }

    /// Block status over the whole node, equal neighbours merged.
    func allExtents(_ node: BlockNode) throws -> [BlockExtent] {
        var extents: [BlockExtent] = []
        var offset: UInt64 = 0
        while offset < node.size {
            let part = try node.blockStatus(at: offset, length: node.size - offset)
            try #require(!part.isEmpty)
            extents += part
            offset += part.reduce(0) { $0 + $1.length }
        }
        return merged(extents)
    }

    /// `qemu-img map` of an image (data / zero per range), equal neighbours merged.
    func qemuMap(_ image: String) throws -> [BlockExtent] {
        let map = try fixture.tool("qemu-img", "map", "--output=json", image)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(map.utf8)) as? [[String: Any]])
        return merged(entries.map {
            BlockExtent(length: UInt64($0["length"] as! Int), isHole: !($0["data"] as! Bool), isZero: $0["zero"] as! Bool)
        })
    }

    func merged(_ extents: [BlockExtent]) -> [BlockExtent] {
        var merged: [BlockExtent] = []
        for extent in extents {
            if let last = merged.last, last.isHole == extent.isHole, last.isZero == extent.isZero {
                merged[merged.count - 1].length += extent.length
            } else {
                merged.append(extent)
            }
        }
        return merged
    }

    @Test func reportsTheImage() throws {
        let image = try fixture.create("a.qcow2", options: "cluster_size=4096,refcount_bits=8,lazy_refcounts=on")
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        let driver = try #require(node.driver as? Qcow2Driver)
        #expect(driver.imageInfo == Qcow2ImageInfo(
            compat: "1.1", clusterSize: 4096, isDirty: false, lazyRefcounts: true, refcountBits: 8, isCorrupt: false,
            extendedL2: false, compressionType: "zlib", backingFilename: nil, fullBackingFilename: nil, backingFormat: nil))
        #expect(driver.exactFilename == image)
        #expect(node.filename == .plain(image))
        #expect(driver.clusterSize == 4096)
        let tuned = try fixture.open(image, readOnly: true, options: Qcow2Options(l2CacheSize: 65536))
        defer { tuned.closeChain() }
        #expect(tuned.filename == .json(BlockOptionObject([
            .init("driver", .string("qcow2")), .init("l2-cache-size", .unsigned(65536)),
            .init("file", .object(BlockOptionObject([.init("driver", .string("file")), .init("filename", .string(image))]))),
        ])))
    }
}
