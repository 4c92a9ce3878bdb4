import BlockCore
import Foundation
import Synchronization
import Testing
@testable import BlockDrivers

@Suite struct Qcow2WriteTests {
    let fixture = Qcow2Fixture()

    struct Scenario: CustomTestStringConvertible, Sendable {
        var format: String
        var withBacking: Bool
        /// Tiny caches: metadata is evicted and written back along the way.
        var smallCaches = false
        var testDescription: String { "\(format)\(withBacking ? " over a backing file" : "")\(smallCaches ? ", small caches" : "")" }
    }

    static let scenarios: [Scenario] = [
        Scenario(format: "cluster_size=65536", withBacking: false),
        Scenario(format: "cluster_size=65536", withBacking: true),
        Scenario(format: "cluster_size=4096", withBacking: true, smallCaches: true),
        Scenario(format: "cluster_size=512", withBacking: false),
        Scenario(format: "cluster_size=4096,compat=0.10", withBacking: false),
        Scenario(format: "cluster_size=4096,compat=0.10", withBacking: true),
        Scenario(format: "cluster_size=512,refcount_bits=64", withBacking: true),
        Scenario(format: "cluster_size=4096,refcount_bits=1", withBacking: false),
        Scenario(format: "cluster_size=2097152", withBacking: true),
    ]

    /// Random writes, write-zeroes (with and without unmap) and discards, unaligned and
    /// straddling clusters, against a raw shadow; then qemu-img must agree and find the
    /// image clean.
    @Test(arguments: scenarios)
    func randomWorkloadMatchesAShadowAndChecksClean(scenario: Scenario) throws {
        let size = 4 << 20
        var backingContents = [UInt8](repeating: 0, count: size)
        var backingName: String?
        if scenario.withBacking {
            let base = try fixture.create("base.qcow2", options: "cluster_size=65536")
            try fixture.qemuIO(base, "write -P 0x5a 0 1M", "write -P 0xa5 2M 1536k")
            backingContents = try fixture.qemuContents(base)
            backingName = "base.qcow2"
        }
        let image = try fixture.create("a.qcow2", options: scenario.format, backing: backingName)
        let clusterSize = Int(scenario.format.split(separator: ",").first { $0.hasPrefix("cluster_size=") }!.dropFirst(13))!
        let isV2 = scenario.format.contains("compat=0.10")
        let caches = scenario.smallCaches ? Qcow2Options(l2CacheSize: 4096, l2CacheEntrySize: 512, refcountCacheSize: 1) : Qcow2Options()
        let node = try fixture.open(image, options: caches, discard: .unmap)
        var shadow = backingContents
        var generator = SeededGenerator(state: UInt64(scenario.format.hashValue & 0xffff) + (scenario.withBacking ? 1 : 0))
        for step in 0..<200 {
            let offset = Int.random(in: 0..<size - 1, using: &generator)
            let length = min(size - offset, Int.random(in: 1...min(3 * clusterSize + 700, 300_000), using: &generator))
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<6:
                var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: step + 1), count: length)
                for index in stride(from: 0, to: length, by: 509) { bytes[index] = UInt8(truncatingIfNeeded: index / 509) }
                try node.write(at: UInt64(offset), bytes)
                shadow.overwrite(at: offset, with: bytes)
            case 6, 7:
                try node.writeZeroes(at: UInt64(offset), length: UInt64(length), flags: step % 2 == 0 ? .mayUnmap : [])
                shadow.overwrite(at: offset, with: [UInt8](repeating: 0, count: length))
            default:
                try node.discard(at: UInt64(offset), length: UInt64(length))
                // Whole clusters read as zeroes; v2 images with a backing file stay as they
                // are (no zero flag to hide the backing file's data).
                let first = (offset + clusterSize - 1) / clusterSize * clusterSize
                let end = offset + length == size ? size : (offset + length) / clusterSize * clusterSize
                if end > first && !(isV2 && scenario.withBacking) {
                    shadow.overwrite(at: first, with: [UInt8](repeating: 0, count: end - first))
                }
            }
            if step % 50 == 49 { try node.flush() }
        }
        #expect(try node.readAll() == shadow)
        node.closeChain()

        let shadowFile = fixture.path("shadow.raw")
        _ = FileManager.default.createFile(atPath: shadowFile, contents: Data(shadow))
        let compare = try run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, shadowFile])
        #expect(compare.status == 0, "\(compare.output)")
        try fixture.expectClean(image)
        let reopened = try fixture.open(image, readOnly: true)
        #expect(try reopened.readAll() == shadow)
        reopened.closeChain()
    }

    /// With tiny caches, the file is consistent (leaks allowed, no corruption) after every
    /// request even without a flush: what a crash at that point would leave.
    @Test func everyIntermediateStateIsConsistent() throws {
        let image = try fixture.create("a.qcow2", options: "cluster_size=4096")
        let node = try fixture.open(image, options: Qcow2Options(l2CacheSize: 4096, l2CacheEntrySize: 512, refcountCacheSize: 1), discard: .unmap)
        defer { node.closeChain() }
        var generator = SeededGenerator(state: 42)
        let copy = fixture.path("crash.qcow2")
        for step in 0..<40 {
            let offset = UInt64.random(in: 0..<(4 << 20) - 20000, using: &generator)
            switch step % 4 {
            case 3: try node.discard(at: offset, length: 16384)
            case 2: try node.writeZeroes(at: offset, length: 12288, flags: .mayUnmap)
            default: try node.write(at: offset, [UInt8](repeating: UInt8(step), count: 9000))
            }
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: image, toPath: copy)
            let check = try run(["qemu-img", "check", "-U", copy])
            #expect(check.status == 0 || check.status == 3, "step \(step): \(check.output)")
        }
    }

    @Test func allocationAppendsAndTheFileThresholdFiresWhenItsHighestOffsetPassesIt() throws {
        let image = try fixture.create("a.qcow2")
        // Fresh layout: header, refcount table, refcount block, L1 at 0x30000.
        #expect(fileSize(image) == 0x30000 + 8)
        let fileEvents = EventRecorder()
        let node = try fixture.open(image, discard: .unmap, fileSink: fileEvents)
        defer { node.closeChain() }
        let file = node.driver.children[0].node
        file.setWriteThreshold(0x50000 + 100)
        try node.write(at: 0, [UInt8](repeating: 1, count: 4096))
        // L2 table at 0x40000, data cluster at 0x50000, zero-filled to its end.
        #expect(file.statistics.writeHighestOffset == 0x60000)
        #expect(fileEvents.recorded.count == 1)
        #expect(fileSize(image) == 0x60000)
        file.setWriteThreshold(0x70000)
        try node.write(at: 4096, [UInt8](repeating: 2, count: 4096))
        #expect(fileEvents.recorded.count == 1)
        try node.write(at: 1 << 20, [UInt8](repeating: 3, count: 512))
        #expect(file.statistics.writeHighestOffset == 0x70000)
        #expect(fileEvents.recorded.count == 1)
        try node.write(at: 2 << 20, [UInt8](repeating: 4, count: 512))
        #expect(fileEvents.recorded.count == 2)
        #expect(file.statistics.writeHighestOffset == 0x80000)
        // A discarded cluster is reused before the file grows.
        try node.discard(at: 1 << 20, length: 65536)
        try node.write(at: 3 << 20, [UInt8](repeating: 5, count: 512))
        #expect(fileSize(image) == 0x80000)
    }

    @Test(arguments: [512, 65536])
    func refcountTableGrows(clusterSize: Int) throws {
        // 16-bit refcounts: with 512-byte clusters one table cluster covers 8 MiB of file.
        let size = clusterSize == 512 ? 12 << 20 : 64 << 20
        let image = try fixture.create("a.qcow2", size: "\(size)", options: "cluster_size=\(clusterSize),refcount_bits=\(clusterSize == 512 ? 16 : 64)")
        let node = try fixture.open(image)
        let chunk = [UInt8](repeating: 0x3c, count: 256 * 1024)
        for offset in stride(from: 0, to: size, by: chunk.count) {
            try node.write(at: UInt64(offset), chunk)
        }
        node.closeChain()
        let info = try fixture.tool("qemu-img", "info", "--output=json", image)
        #expect(info.contains("\"virtual-size\": \(size)"))
        try fixture.expectClean(image)
        let reopened = try fixture.open(image, readOnly: true)
        defer { reopened.closeChain() }
        #expect(try reopened.read(at: UInt64(size - 5), count: 5) == [0x3c, 0x3c, 0x3c, 0x3c, 0x3c])
    }

    /// On a fixed-size file (a volume), allocating writes past its end fail with ENOSPC and
    /// leave no trace but the part of the request already done: no leaked cluster, nothing
    /// else changed. Once the file has grown (by uneven amounts), the same write is retried
    /// (as a held NBD write is) until it succeeds.
    @Test(arguments: ["cluster_size=65536", "cluster_size=4096", "cluster_size=512,refcount_bits=16"])
    func onAFullVolumeWritesFailWithNoSpaceAndTheImageStaysClean(format: String) throws {
        let size = 1 << 20
        let image = try fixture.create("a.qcow2", size: "\(size)", options: format)
        let node = try fixture.open(image, volume: true)
        var generator = SeededGenerator(state: 7)
        var expected = [UInt8](repeating: 0, count: size)
        var failures = 0
        var offset = 1000
        while offset < size - 40_000 {
            let count = Int.random(in: 1...40_000, using: &generator)
            let data = [UInt8](repeating: UInt8(offset % 251 + 1), count: count)
            for attempt in 1... {
                // Growth by up to 80 kB makes room for any write within a few attempts,
                // unless failed attempts leak clusters.
                try #require(attempt < 10, "the write at \(offset) never finds room")
                do {
                    try node.write(at: UInt64(offset), data)
                    break
                } catch BlockError.noSpace {
                    failures += 1
                    try node.flush()
                    let check = try run(["qemu-img", "check", "-U", image])
                    #expect(check.status == 0, "after failure \(failures): \(check.output)")
                    let now = try node.read(at: 0, count: size)
                    #expect(now[..<offset] == expected[..<offset] && now[(offset + count)...] == expected[(offset + count)...])
                    let grown = fileSize(image) + Int.random(in: 1...80_000, using: &generator)
                    #expect(truncate(image, off_t(grown)) == 0)
                }
            }
            expected.replaceSubrange(offset..<offset + count, with: data)
            offset += count + Int.random(in: 0...30_000, using: &generator)
        }
        #expect(failures > 10)
        node.closeChain()
        try fixture.expectClean(image)
        #expect(try fixture.qemuContents(image) == expected)
    }

    @Test func internalSnapshotsStayIntact() throws {
        let image = try fixture.create("a.qcow2")
        try fixture.qemuIO(image, "write -P 0x11 0 192k", "write -P 0x12 1M 64k", "write -c -P 0x13 2M 64k")
        let before = try fixture.qemuContents(image)
        try fixture.tool("qemu-img", "snapshot", "-c", "snap1", image)
        let node = try fixture.open(image, discard: .unmap)
        try node.write(at: 4096, [UInt8](repeating: 0x21, count: 4096))
        try node.write(at: 2 << 20 + 100, [UInt8](repeating: 0x22, count: 100))
        try node.writeZeroes(at: 65536, length: 65536, flags: [])
        try node.discard(at: 1 << 20, length: 65536)
        node.closeChain()
        try fixture.expectClean(image)
        let snapshot = fixture.path("snap.raw")
        try fixture.tool("qemu-img", "convert", "-l", "snapshot.name=snap1", "-O", "raw", image, snapshot)
        #expect(Array(FileManager.default.contents(atPath: snapshot)!) == before)
        var expected = before
        expected.replaceSubrange(4096..<8192, with: repeatElement(0x21, count: 4096))
        expected.replaceSubrange((2 << 20) + 100..<(2 << 20) + 200, with: repeatElement(0x22, count: 100))
        expected.replaceSubrange(65536..<131072, with: repeatElement(0, count: 65536))
        expected.replaceSubrange((1 << 20)..<(1 << 20) + 65536, with: repeatElement(0, count: 65536))
        #expect(try fixture.qemuContents(image) == expected)
    }

    @Test func lazyRefcountsSetTheDirtyBitUntilClose() throws {
        let image = try fixture.create("a.qcow2", options: "lazy_refcounts=on")
        let node = try fixture.open(image)
        let driver = try #require(node.driver as? Qcow2Driver)
        #expect(!driver.imageInfo.isDirty)
        try node.write(at: 0, [UInt8](repeating: 1, count: 70000))
        #expect(driver.imageInfo.isDirty)
        #expect(contents(of: image, at: 79, count: 1) == [1])
        try node.flush()
        node.closeChain()
        #expect(contents(of: image, at: 79, count: 1) == [0])
        try fixture.expectClean(image)
    }

    @Test func dirtyAndCorruptImagesAreNotOpenedWritable() throws {
        let image = try fixture.create("a.qcow2", options: "lazy_refcounts=on")
        // A crash with lazy refcounts leaves the dirty bit set.
        _ = try run(["qemu-io", "-f", "qcow2", "-c", "write 0 64k", "-c", "abort", image])
        #expect(contents(of: image, at: 79, count: 1) == [1])
        #expect(throws: BlockError.self) { try fixture.open(image) }
        let readOnly = try fixture.open(image, readOnly: true)
        #expect(try #require(readOnly.driver as? Qcow2Driver).imageInfo.isDirty)
        readOnly.closeChain()

        let corrupt = try fixture.create("b.qcow2")
        patch(corrupt, at: 79, [2])
        #expect(throws: BlockError.invalidArgument("qcow2: Image is corrupt; cannot be opened read/write")) { try fixture.open(corrupt) }
        try fixture.open(corrupt, readOnly: true).closeChain()
    }

    @Test func concurrentRequestsFromSeveralThreads() throws {
        let image = try fixture.create("a.qcow2", size: "8M", options: "cluster_size=4096")
        try fixture.qemuIO(image, "write -P 0x77 0 8M")
        let node = try fixture.open(image, discard: .unmap)
        // Each thread owns a 1 MiB region: overwrites, allocating writes after discards, reads.
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            var generator = SeededGenerator(state: UInt64(thread))
            let base = UInt64(thread) << 20
            var shadow = [UInt8](repeating: 0x77, count: 1 << 20)
            do {
                for step in 0..<200 {
                    let offset = Int.random(in: 0..<(1 << 20) - 10000, using: &generator)
                    switch step % 5 {
                    case 0:
                        try node.discard(at: base + UInt64(offset), length: 8192)
                        let first = (offset + 4095) / 4096 * 4096
                        let end = (offset + 8192) / 4096 * 4096
                        shadow.replaceSubrange(first..<end, with: repeatElement(0, count: end - first))
                    case 1:
                        let got = try node.read(at: base + UInt64(offset), count: 10000)
                        if got != Array(shadow[offset..<offset + 10000]) { failures.withLock { $0.append("thread \(thread) step \(step)") } }
                    default:
                        let bytes = [UInt8](repeating: UInt8(thread * 16 + step % 16), count: 6000)
                        try node.write(at: base + UInt64(offset), bytes)
                        shadow.replaceSubrange(offset..<offset + 6000, with: bytes)
                    }
                }
                if try node.read(at: base, count: 1 << 20) != shadow { failures.withLock { $0.append("thread \(thread) final") } }
            } catch {
                failures.withLock { $0.append("thread \(thread): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        node.closeChain()
        try fixture.expectClean(image)
    }

    /// Allocating writes run their data I/O outside the metadata lock: threads writing
    /// different parts of the same fresh clusters at once must wait for each other's
    /// allocation, not allocate the cluster twice (the loser's data would be lost, the
    /// winner's cluster leaked); discards racing with them leave consistent metadata.
    @Test func concurrentWritesIntoTheSameFreshClustersAllLand() throws {
        let image = try fixture.create("a.qcow2", size: "4M", options: "cluster_size=65536")
        let node = try fixture.open(image, discard: .unmap)
        let threads = 8
        let clusters = 48
        let piece = 65536 / threads
        // Clusters 48..<52 are written by every thread and discarded by thread 0 meanwhile.
        let racing = 48..<52
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            do {
                for cluster in 0..<clusters {
                    let bytes = [UInt8](repeating: UInt8(thread + 1), count: piece)
                    try node.write(at: UInt64(cluster * 65536 + thread * piece), bytes)
                    let racer = racing.lowerBound + cluster % racing.count
                    if thread == 0 {
                        try node.discard(at: UInt64(racer * 65536), length: 65536)
                    } else {
                        try node.write(at: UInt64(racer * 65536 + thread * piece), bytes)
                    }
                }
            } catch {
                failures.withLock { $0.append("thread \(thread): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        var expected = [UInt8](repeating: 0, count: clusters * 65536)
        for cluster in 0..<clusters {
            for thread in 0..<threads {
                let start = cluster * 65536 + thread * piece
                expected.replaceSubrange(start..<start + piece, with: repeatElement(UInt8(thread + 1), count: piece))
            }
        }
        let contents = try node.readAll()
        #expect(Array(contents[..<expected.count]) == expected)
        for cluster in racing {
            for thread in 0..<threads {
                let start = cluster * 65536 + thread * piece
                let got = Set(contents[start..<start + piece])
                #expect(got == [0] || got == [UInt8(thread + 1)], "cluster \(cluster) piece \(thread): \(got)")
            }
        }
        node.closeChain()
        try fixture.expectClean(image)
        #expect(try fixture.qemuContents(image) == contents)
    }

    @Test func permissionsOnTheFileFollowQEMU() throws {
        let image = try fixture.create("a.qcow2")
        let node = try fixture.open(image)
        let file = node.driver.children[0].node
        #expect(file.permissions.required == [.consistentRead, .write, .resize])
        #expect(file.permissions.shared == [.consistentRead, .writeUnchanged, .graphMod])
        #expect(throws: BlockError.self) { _ = try file.claim(.export(writable: true)) }
        node.closeChain()
        let readOnly = try fixture.open(image, readOnly: true)
        #expect(readOnly.driver.children[0].node.permissions.required == [.consistentRead])
        #expect(throws: BlockError.readOnly) { try readOnly.write(at: 0, [1]) }
        readOnly.closeChain()
    }

    @Test func zeroWritesUseZeroClustersAndKeepOrFreeHostClusters() throws {
        let image = try fixture.create("a.qcow2")
        try fixture.qemuIO(image, "write -P 1 0 256k")
        let node = try fixture.open(image, discard: .unmap)
        try node.writeZeroes(at: 0, length: 65536, flags: [])
        try node.writeZeroes(at: 65536, length: 65536, flags: .mayUnmap)
        #expect(throws: BlockError.notSupported("fast zeroing of partial clusters not supported")) {
            try node.writeZeroes(at: 131072 + 10, length: 100, flags: .fastZero)
        }
        try node.writeZeroes(at: 131072 + 10, length: 100, flags: [])
        node.closeChain()
        let map = try fixture.tool("qemu-img", "map", "--output=json", image)
        #expect(map.contains("\"start\": 0, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false, \"offset\""))
        #expect(map.contains("\"start\": 65536, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false}"))
        var expected = [UInt8](repeating: 1, count: 262_144)
        expected.replaceSubrange(0..<131_072, with: repeatElement(0, count: 131_072))
        expected.replaceSubrange(131_082..<131_182, with: repeatElement(0, count: 100))
        #expect(try Array(fixture.qemuContents(image)[0..<262_144]) == expected)
        try fixture.expectClean(image)
    }
}

extension Qcow2WriteTests {
    struct Twin: CustomTestStringConvertible, Sendable {
        var format: String
        var withBacking: Bool
        var testDescription: String { "\(format)\(withBacking ? " over a backing file" : "")" }
    }

    /// One request, as qemu-io spells it and as this driver takes it.
    struct Request: Sendable {
        var qemuIO: String
        var apply: @Sendable (BlockNode) throws -> Void
    }

    static let requests: [Request] = [
        // First on a fresh image: QEMU allocates the L2 table even for zeroes.
        Request(qemuIO: "write -z 0 64k") { try $0.writeZeroes(at: 0, length: 65536) },
        Request(qemuIO: "write -P 1 70000 1000") { try $0.write(at: 70000, [UInt8](repeating: 1, count: 1000)) },
        Request(qemuIO: "write -P 2 258048 8192") { try $0.write(at: 258_048, [UInt8](repeating: 2, count: 8192)) },
        Request(qemuIO: "write -z -u 393216 64k") { try $0.writeZeroes(at: 393_216, length: 65536, flags: .mayUnmap) },
        Request(qemuIO: "write -z 460000 1000") { try $0.writeZeroes(at: 460_000, length: 1000) },
        Request(qemuIO: "discard 524288 64k") { try $0.discard(at: 524_288, length: 65536) },
        Request(qemuIO: "write -P 3 589824 64k") { try $0.write(at: 589_824, [UInt8](repeating: 3, count: 65536)) },
        Request(qemuIO: "discard 589824 64k") { try $0.discard(at: 589_824, length: 65536) },
        Request(qemuIO: "write -P 4 1M 4k") { try $0.write(at: 1 << 20, [UInt8](repeating: 4, count: 4096)) },
        Request(qemuIO: "write -z 1049000 500") { try $0.writeZeroes(at: 1_049_000, length: 500) },
        Request(qemuIO: "write -z 2097000 1000") { try $0.writeZeroes(at: 2_097_000, length: 1000) },
        Request(qemuIO: "write -P 5 4190000 4304") { try $0.write(at: 4_190_000, [UInt8](repeating: 5, count: 4304)) },
    ]

    /// The same requests through this driver and through qemu-io on a twin image: the same
    /// L2 entries and host offsets (`qemu-img map`), the same file size and the same holes
    /// in the file (QEMU zeroes a fresh cluster before writing into it, allocates L2 tables
    /// for zeroes and discards, turns partial zeroes into zero clusters where it can,
    /// ignores discards on v2 images with a backing file).
    @Test(arguments: [
        Twin(format: "compat=1.1", withBacking: false), Twin(format: "compat=0.10", withBacking: false),
        Twin(format: "compat=1.1", withBacking: true), Twin(format: "compat=0.10", withBacking: true),
    ])
    func requestsLayOutTheFileAsQemuDoes(twin: Twin) throws {
        var backing: String?
        if twin.withBacking {
            let base = try fixture.create("base.qcow2")
            try fixture.qemuIO(base, "write -P 0x5a 0 1M", "write -P 0x5b 2M 64k")
            backing = "base.qcow2"
        }
        try expectLaidOutAsByQemuIO(Self.requests, options: twin.format, backing: backing)
    }

    /// Zeroes reaching the end of a disk whose size is not a multiple of the cluster size
    /// treat its last cluster as whole (QEMU's rule).
    @Test(arguments: ["compat=1.1", "compat=0.10"])
    func zeroesAtTheEndOfAnUnalignedDisk(format: String) throws {
        try expectLaidOutAsByQemuIO([
            Request(qemuIO: "write -P 6 4128768 65024") { try $0.write(at: 4_128_768, [UInt8](repeating: 6, count: 65024)) },
            Request(qemuIO: "write -P 7 4063232 65536") { try $0.write(at: 4_063_232, [UInt8](repeating: 7, count: 65536)) },
            Request(qemuIO: "write -z 4190000 3792") { try $0.writeZeroes(at: 4_190_000, length: 3792) },
            Request(qemuIO: "write -z 4063232 65536") { try $0.writeZeroes(at: 4_063_232, length: 65536) },
            Request(qemuIO: "write -z 4128768 65024") { try $0.writeZeroes(at: 4_128_768, length: 65024) },
            Request(qemuIO: "write -z 0 3000") { try $0.writeZeroes(at: 0, length: 3000) },
        ], options: format, size: "4193792")
    }

    /// Applies `requests` through this driver to one image and through qemu-io to a twin,
    /// then expects the same `qemu-img map` (L2 entries and host offsets), file size, holes
    /// in the file and guest content.
    func expectLaidOutAsByQemuIO(
        _ requests: [Request], options: String, size: String = "4M", backing: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let ours = try fixture.create("ours.qcow2", size: size, options: options, backing: backing)
        let theirs = try fixture.create("theirs.qcow2", size: size, options: options, backing: backing)
        var commands = ["qemu-io", "-f", "qcow2"]
        for request in requests { commands += ["-c", request.qemuIO] }
        let qemuIO = try run(commands + [theirs])
        try #require(qemuIO.status == 0 && !qemuIO.output.contains("error") && !qemuIO.output.contains("failed"), "\(qemuIO.output)")
        let node = try fixture.open(ours, discard: .unmap)
        for request in requests { try request.apply(node) }
        node.closeChain()

        let map = { (image: String) throws -> String in
            try fixture.tool("qemu-img", "map", "--output=json", image).replacingOccurrences(of: image, with: "IMAGE")
        }
        #expect(try map(ours) == map(theirs), sourceLocation: sourceLocation)
        #expect(fileSize(ours) == fileSize(theirs), sourceLocation: sourceLocation)
        #expect(hostLayout(ours) == hostLayout(theirs), sourceLocation: sourceLocation)
        #expect(try fixture.qemuContents(ours) == fixture.qemuContents(theirs), sourceLocation: sourceLocation)
        try fixture.expectClean(ours, sourceLocation: sourceLocation)
    }

    /// A partial write into a fresh cluster zeroes the whole cluster first, in one request
    /// to the file: the file node's threshold sees the end of the cluster (QEMU's order).
    @Test func theFileThresholdSeesTheWholeFreshCluster() throws {
        let image = try fixture.create("a.qcow2")
        let fileEvents = EventRecorder()
        let node = try fixture.open(image, fileSink: fileEvents)
        defer { node.closeChain() }
        let file = node.driver.children[0].node
        try node.write(at: 0, [UInt8](repeating: 1, count: 65536))  // L2 table 0x40000, data 0x50000
        file.setWriteThreshold(0x60000 + 1)
        try node.write(at: 65536 + 100, [UInt8](repeating: 2, count: 1000))  // data cluster 0x60000
        file.setWriteThreshold(0x70000 + 0x8000)
        try node.write(at: 2 * 65536 + 0xF000, [UInt8](repeating: 3, count: 0x2000))  // straddles 0x70000 and 0x80000
        let expected: [BlockEvent] = [
            .writeThresholdExceeded(nodeName: file.name, amountExceeded: 0x70000 - 0x60001, threshold: 0x60001),
            .writeThresholdExceeded(nodeName: file.name, amountExceeded: 0x90000 - 0x78000, threshold: 0x78000),
        ]
        #expect(fileEvents.recorded == expected)
    }

    /// Without the zero flag, a discarded cluster would show the backing file's data: a
    /// v2 image with a backing file ignores discards, as QEMU does.
    @Test func discardsOnAV2ImageWithABackingFileChangeNothing() throws {
        let base = try fixture.create("base.qcow2")
        try fixture.qemuIO(base, "write -P 0x5a 0 1M")
        let image = try fixture.create("a.qcow2", options: "compat=0.10", backing: "base.qcow2")
        let node = try fixture.open(image, discard: .unmap)
        defer { node.closeChain() }
        try node.write(at: 0, [UInt8](repeating: 7, count: 131_072))
        try node.discard(at: 0, length: 1 << 20)
        #expect(try node.read(at: 0, count: 131_072) == [UInt8](repeating: 7, count: 131_072))
    }
}

/// A file's data ranges (SEEK_DATA/SEEK_HOLE), as [start, end] pairs.
func hostLayout(_ path: String) -> [[Int]] {
    let descriptor = open(path, O_RDONLY)
    precondition(descriptor >= 0)
    defer { close(descriptor) }
    let size = fileSize(path)
    var layout: [[Int]] = []
    var position = 0
    while position < size {
        let data = Int(lseek(descriptor, off_t(position), 3 /* SEEK_DATA */))
        if data < 0 || data >= size { break }
        let hole = Int(lseek(descriptor, off_t(data), 4 /* SEEK_HOLE */))
        layout.append([data, hole])
        position = hole
    }
    return layout
}

/// Overwrites bytes of a file behind everyone's back.
func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) {
    let handle = FileHandle(forUpdatingAtPath: path)!
    defer { try? handle.close() }
    try! handle.seek(toOffset: offset)
    handle.write(Data(bytes))
}

extension [UInt8] {
    /// Fast in debug builds, unlike `replaceSubrange`.
    mutating func overwrite(at offset: Int, with bytes: [UInt8]) {
        precondition(offset + bytes.count <= count)
        withUnsafeMutableBytes { target in
            bytes.withUnsafeBytes { target.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }
}
