import Foundation
import Testing
@testable import ImageTools

/// `ImageCheckResult.check` against `qemu-img check` on clean and damaged images: same
/// messages, same summary (human and JSON), same exit status.
@Suite struct ImageCheckTests {
    let directory = TemporaryDirectory()

    /// A 64 MiB image with 3 MiB of data at 0 and 64 KiB at 10 MiB: L1 at 0x30000, the L2
    /// table at 0x40000, data from cluster 5 on, refcount block (16-bit) at 0x20000.
    private func imageWithData(_ name: String) throws -> String {
        let path = directory.file(name)
        try tool("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
        try tool("qemu-io", "-c", "write -P 1 0 3M", "-c", "write -P 2 10M 64k", path)
        return path
    }

    private func setRefcount(_ path: String, cluster: UInt64, to value: UInt64) throws {
        try patch(path, at: 0x20000 + 2 * cluster, bigEndian(value, bytes: 2))
    }

    /// Checks with both tools and compares everything; returns our exit status.
    @discardableResult
    private func expectSameCheck(_ path: String, format: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int32 {
        let formatArguments = format.map { ["-f", $0] } ?? []
        let human = try run(["qemu-img", "check"] + formatArguments + [path])
        let json = try run(["qemu-img", "check", "--output", "json"] + formatArguments + [path])
        let result: ImageCheckResult
        do {
            result = try ImageCheckResult.check(filename: path, format: format)
        } catch {
            #expect(error.printed == human.errors, sourceLocation: sourceLocation)
            #expect(error.exitCode == human.status, sourceLocation: sourceLocation)
            return error.exitCode
        }
        #expect(result.messages.map { $0 + "\n" }.joined() == human.errors, sourceLocation: sourceLocation)
        #expect(result.human == human.output, sourceLocation: sourceLocation)
        #expect(result.json == json.output, sourceLocation: sourceLocation)
        #expect(result.exitCode == human.status, sourceLocation: sourceLocation)
        return result.exitCode
    }

    @Test func cleanImages() throws {
        let empty = directory.file("empty.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", empty, "1G")
        #expect(try expectSameCheck(empty) == 0)
        let data = try imageWithData("data.qcow2")
        #expect(try expectSameCheck(data) == 0)
        let compressed = directory.file("compressed.qcow2")
        try tool("qemu-img", "convert", "-c", "-O", "qcow2", data, compressed)
        #expect(try expectSameCheck(compressed) == 0)
        let narrow = directory.file("narrow.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1,cluster_size=4k", narrow, "16M")
        try tool("qemu-io", "-c", "write 0 100k", narrow)
        #expect(try expectSameCheck(narrow) == 0)
    }

    @Test func imagesWithSnapshotsAndBacking() throws {
        let path = try imageWithData("snap.qcow2")
        try tool("qemu-img", "snapshot", "-c", "one", path)
        try tool("qemu-io", "-c", "write -P 3 0 64k", path)
        #expect(try expectSameCheck(path) == 0)
        let overlay = directory.file("overlay.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-b", path, "-F", "qcow2", overlay)
        try tool("qemu-io", "-c", "write 1M 4k", overlay)
        #expect(try expectSameCheck(overlay) == 0)
    }

    @Test func leaks() throws {
        let header = try imageWithData("leak-header.qcow2")
        try setRefcount(header, cluster: 0, to: 2)
        #expect(try expectSameCheck(header) == 3)
        // A refcount past the end of the file is not reported.
        let pastEnd = try imageWithData("leak-past-end.qcow2")
        try setRefcount(pastEnd, cluster: 60, to: 1)
        #expect(try expectSameCheck(pastEnd) == 0)
        // The data cluster of guest offset 10 MiB (host cluster 53), unlinked from its L2 entry.
        let unreferenced = try imageWithData("leak-unreferenced.qcow2")
        try patch(unreferenced, at: 0x40000 + 8 * 160, bigEndian(0, bytes: 8))
        #expect(try expectSameCheck(unreferenced) == 3)
    }

    @Test func corruptions() throws {
        let l2 = try imageWithData("l2-refcount-zero.qcow2")
        try setRefcount(l2, cluster: 4, to: 0)
        #expect(try expectSameCheck(l2) == 2)
        let data = try imageWithData("data-refcount-zero.qcow2")
        try setRefcount(data, cluster: 5, to: 0)
        #expect(try expectSameCheck(data) == 2)
        // Refcount 2 without a second reference: a leak and a COPIED error.
        let shared = try imageWithData("data-refcount-two.qcow2")
        try setRefcount(shared, cluster: 5, to: 2)
        #expect(try expectSameCheck(shared) == 2)
        let noCopied = try imageWithData("no-copied.qcow2")
        try patch(noCopied, at: 0x40000, bigEndian(0x50000, bytes: 8))
        #expect(try expectSameCheck(noCopied) == 2)
        let pastEnd = try imageWithData("past-end.qcow2")
        try patch(pastEnd, at: 0x40000, bigEndian(0x8000_0000_1000_0000, bytes: 8))
        #expect(try expectSameCheck(pastEnd) == 2)
        let reservedL1 = try imageWithData("reserved-l1.qcow2")
        try patch(reservedL1, at: 0x30000, bigEndian(0x9000_0000_0004_0000, bytes: 8))
        #expect(try expectSameCheck(reservedL1) == 2)
        let reservedL2 = try imageWithData("reserved-l2.qcow2")
        try patch(reservedL2, at: 0x40000 + 8 * 100, bigEndian(2, bytes: 8))
        #expect(try expectSameCheck(reservedL2) == 2)
        let refcountTable = try imageWithData("bad-refcount-table.qcow2")
        try patch(refcountTable, at: 0x10000, bigEndian(0x20100, bytes: 8))
        #expect(try expectSameCheck(refcountTable) == 2)
        let blockOutside = try imageWithData("refcount-block-outside.qcow2")
        try patch(blockOutside, at: 0x10000, bigEndian(0x1000_0000, bytes: 8))
        #expect(try expectSameCheck(blockOutside) == 2)
    }

    @Test func dirtyLazyRefcountImage() throws {
        let path = directory.file("dirty.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", path, "16M")
        _ = try run(["qemu-io", "-c", "write 0 64k", "-c", "abort", path])
        #expect(try expectSameCheck(path) == 2)
    }

    @Test func noCheckForRawAndOpenFailures() throws {
        let raw = directory.file("disk.raw")
        try tool("qemu-img", "create", "-q", "-f", "raw", raw, "1M")
        #expect(try expectSameCheck(raw) == 63)
        #expect(try expectSameCheck(directory.file("missing.qcow2")) == 1)
        #expect(try expectSameCheck(raw, format: "qcow2") == 1)
    }
}
