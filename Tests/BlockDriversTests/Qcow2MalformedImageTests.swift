import BlockCore
import Foundation
import Testing
@testable import BlockDrivers

@Suite struct Qcow2MalformedImageTests {
    let fixture = Qcow2Fixture()

    /// The error opening `image` gives, nil when it opens.
    func openError(_ image: String, readOnly: Bool = true) -> BlockError? {
        do {
            try fixture.open(image, readOnly: readOnly).closeChain()
            return nil
        } catch let error as BlockError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    struct Damage: CustomTestStringConvertible, Sendable {
        var name: String
        var offset: UInt64
        var bytes: [UInt8]
        var error: String
        var testDescription: String { name }
    }

    static let damages: [Damage] = [
        Damage(name: "bad magic", offset: 0, bytes: [0x51, 0x46, 0x49, 0x00], error: "Image is not in qcow2 format"),
        Damage(name: "version 4", offset: 4, bytes: [0, 0, 0, 4], error: "Unsupported qcow2 version 4"),
        Damage(name: "cluster bits 8", offset: 20, bytes: [0, 0, 0, 8], error: "Unsupported cluster size: 2^8"),
        Damage(name: "cluster bits 30", offset: 20, bytes: [0, 0, 0, 30], error: "Unsupported cluster size: 2^30"),
        Damage(name: "huge size", offset: 24, bytes: [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], error: "Image is too big"),
        Damage(name: "encryption", offset: 32, bytes: [0, 0, 0, 1], error: "Encrypted qcow2 images are not supported"),
        Damage(name: "huge L1", offset: 36, bytes: [0x10, 0, 0, 0], error: "Active L1 table too large"),
        Damage(name: "small L1", offset: 36, bytes: [0, 0, 0, 0], error: "L1 table is too small"),
        Damage(name: "L1 past the end", offset: 40, bytes: [0, 0, 0, 1, 0, 0, 0, 0], error: "Invalid L1 table offset"),
        Damage(name: "L1 unaligned", offset: 40, bytes: [0, 0, 0, 0, 0, 3, 0, 8], error: "Invalid L1 table offset"),
        Damage(name: "refcount table past the end", offset: 48, bytes: [0, 0, 0, 0, 0x10, 0, 0, 0], error: "Invalid reference count table offset"),
        Damage(name: "huge refcount table", offset: 56, bytes: [0x7f, 0, 0, 0], error: "Reference count table too large"),
        Damage(name: "no refcount table", offset: 56, bytes: [0, 0, 0, 0], error: "Image does not contain a reference count table"),
        Damage(name: "too many snapshots", offset: 60, bytes: [0x7f, 0, 0, 0], error: "Snapshot table too large"),
        Damage(name: "snapshots past the end", offset: 60, bytes: [0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 0], error: "Invalid snapshot table offset"),
        Damage(name: "unknown incompatible feature", offset: 72, bytes: [0, 0, 1, 0, 0, 0, 0, 0],
               error: "Unsupported qcow2 feature(s): Unknown incompatible feature: 10000000000"),
        Damage(name: "external data file", offset: 79, bytes: [4], error: "Images with an external data file are not supported"),
        Damage(name: "extended L2", offset: 79, bytes: [16], error: "Images with extended L2 entries (subclusters) are not supported"),
        Damage(name: "refcount order 7", offset: 96, bytes: [0, 0, 0, 7], error: "Reference count entry width too large; may not exceed 64 bits"),
        Damage(name: "short header length", offset: 100, bytes: [0, 0, 0, 50], error: "qcow2 header too short"),
        Damage(name: "header beyond the cluster", offset: 100, bytes: [0, 1, 0, 8], error: "qcow2 header exceeds cluster size"),
        Damage(name: "compression type without its bit", offset: 104, bytes: [1],
               error: "compression_type field and the compression type incompatible feature bit do not agree"),
        Damage(name: "backing name outside cluster 0", offset: 8, bytes: [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 10], error: "Invalid backing file offset"),
        Damage(name: "backing name too long", offset: 8, bytes: [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0], error: "Invalid backing file offset"),
    ]

    @Test(arguments: damages)
    func damagedHeadersAreRefused(damage: Damage) throws {
        let image = try fixture.create("a.qcow2")
        try fixture.qemuIO(image, "write -P 1 0 64k")
        patch(image, at: damage.offset, damage.bytes)
        #expect(openError(image)?.description == damage.error)
    }

    @Test func truncatedFilesAreRefused() throws {
        let image = try fixture.create("a.qcow2")
        for length in [100, 71, 4, 0] {
            #expect(truncate(image, off_t(length)) == 0)
            #expect(openError(image)?.description == (length == 100 ? "qcow2 header too short" : "Image is not in qcow2 format"))
        }
    }

    @Test func unknownIncompatibleFeaturesAreNamedFromTheImagesTable() throws {
        let image = try fixture.create("a.qcow2")
        // QEMU's feature name table names bit 4 "extended L2 entries"; claim bit 5 is that name.
        let header = contents(of: image, at: 0, count: 4096)
        let table = try #require((0..<header.count - 4).first { header[$0..<$0 + 4] == [0x68, 0x03, 0xf8, 0x57] })
        let entries = Int(UInt32(header[table + 4]) << 24 | UInt32(header[table + 5]) << 16 | UInt32(header[table + 6]) << 8 | UInt32(header[table + 7])) / 48
        let nameOffset = try #require((0..<entries).map { table + 8 + $0 * 48 }.first { header[$0] == 0 && header[$0 + 1] == 4 })
        patch(image, at: UInt64(nameOffset + 1), [5])
        patch(image, at: 79, [0x20])
        #expect(openError(image)?.description == "Unsupported qcow2 feature(s): extended L2 entries")
    }

    @Test func bogusTableEntriesFailRequestsWithoutReadingOutsideTheFile() throws {
        let image = try fixture.create("a.qcow2")
        try fixture.qemuIO(image, "write -P 1 0 64k", "write -P 2 1M 64k")
        // L1 at 0x30000: entry 0 → L2 table far past the end of the file.
        patch(image, at: 0x30000, [0x80, 0, 0, 0, 0x10, 0, 0, 0])
        let node = try fixture.open(image, readOnly: true)
        defer { node.closeChain() }
        #expect(throws: BlockError.self) { _ = try node.read(at: 0, count: 512) }
        let unaligned = try fixture.create("b.qcow2")
        try fixture.qemuIO(unaligned, "write -P 1 0 64k")
        // L2 at 0x40000: entry 0 → unaligned data offset.
        patch(unaligned, at: 0x40000, [0x80, 0, 0, 0, 0, 0x05, 0, 0x10])
        let other = try fixture.open(unaligned, readOnly: true)
        defer { other.closeChain() }
        #expect(throws: BlockError.self) { _ = try other.read(at: 0, count: 512) }
        // A data cluster past the end reads as zeroes rather than outside the file.
        patch(unaligned, at: 0x40000, [0x80, 0, 0, 0x10, 0, 0, 0, 0])
        let beyond = try fixture.open(unaligned, readOnly: true)
        defer { beyond.closeChain() }
        #expect(try beyond.read(at: 0, count: 4) == [0, 0, 0, 0])
    }

    @Test func backingChainsThatLoopAreRefused() throws {
        let a = try fixture.create("a.qcow2")
        let b = try fixture.create("b.qcow2", backing: "a.qcow2")
        try fixture.tool("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a)
        let error = try #require(openError(b))
        #expect(error.description.contains("backing chain loop"), "\(error)")
        let selfReferencing = try fixture.create("c.qcow2")
        try fixture.tool("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "c.qcow2", "-F", "qcow2", selfReferencing)
        #expect(openError(selfReferencing)?.description.contains("backing chain loop") == true)
        let dangling = try fixture.create("d.qcow2")
        try fixture.tool("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "missing.qcow2", "-F", "qcow2", dangling)
        #expect(openError(dangling)?.description
            == "Could not open backing file: Could not open '\(fixture.path("missing.qcow2"))': No such file or directory")
    }

    @Test func cacheOptionErrors() throws {
        let image = try fixture.create("a.qcow2")
        func error(_ options: Qcow2Options) -> String? {
            do {
                try fixture.open(image, readOnly: true, options: options).closeChain()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(error(Qcow2Options(cacheSize: 1 << 20, l2CacheSize: 1 << 19, refcountCacheSize: 1 << 18))
            == "cache-size, l2-cache-size and refcount-cache-size may not be set at the same time")
        #expect(error(Qcow2Options(cacheSize: 1 << 20, l2CacheSize: 2 << 20)) == "l2-cache-size may not exceed cache-size")
        #expect(error(Qcow2Options(l2CacheEntrySize: 1000)) == "L2 cache entry size must be a power of two between 512 and the cluster size (65536)")
        #expect(error(Qcow2Options(lazyRefcounts: true)) == nil)
        let v2 = try fixture.create("v2.qcow2", options: "compat=0.10")
        #expect(throws: BlockError.invalidArgument("Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level")) {
            try fixture.open(v2, options: Qcow2Options(lazyRefcounts: true))
        }
    }
}
