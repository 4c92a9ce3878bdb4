import Foundation
import Testing
@testable import ImageTools

/// `ImageInfo` against `qemu-img info` on images qemu-img and qemu-io made.
@Suite struct ImageInfoTests {
    let directory = TemporaryDirectory()

    private func expectSameInfo(_ path: String, format: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let info = try ImageInfo.read(filename: path, format: format)
        let formatArguments = format.map { ["-f", $0] } ?? []
        let human = try runTool(["qemu-img", "info"] + formatArguments + [path])
        let json = try runTool(["qemu-img", "info", "--output", "json"] + formatArguments + [path])
        #expect(info.human == human.output, sourceLocation: sourceLocation)
        #expect(info.json == json.output, sourceLocation: sourceLocation)
    }

    @Test func rawImages() throws {
        let path = directory.file("disk.raw")
        try tool("qemu-img", "create", "-q", "-f", "raw", path, "100M")
        try expectSameInfo(path)
        let odd = directory.file("odd.raw")
        FileManager.default.createFile(atPath: odd, contents: Data(count: 513))
        try expectSameInfo(odd)
    }

    @Test func qcow2WithDataAndCompression() throws {
        let path = directory.file("data.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
        try tool("qemu-io", "-c", "write -P 1 0 3M", path)
        try expectSameInfo(path)
        let compressed = directory.file("compressed.qcow2")
        try tool("qemu-img", "convert", "-c", "-O", "qcow2", path, compressed)
        try expectSameInfo(compressed)
        // A qcow2 file read as raw.
        try expectSameInfo(path, format: "raw")
    }

    @Test func versionTwoAndOptions() throws {
        let v2 = directory.file("v2.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", v2, "10G")
        try expectSameInfo(v2)
        let lazy = directory.file("lazy.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,refcount_bits=1,compression_type=zstd", lazy, "1T")
        try expectSameInfo(lazy)
    }

    @Test func backingFiles() throws {
        try FileManager.default.createDirectory(atPath: directory.file("sub"), withIntermediateDirectories: true)
        try tool("qemu-img", "create", "-q", "-f", "raw", directory.file("sub/base.raw"), "10M")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", directory.file("sub/overlay.qcow2"))
        try expectSameInfo(directory.file("sub/overlay.qcow2"))
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", directory.file("sub/overlay.qcow2"), "-F", "qcow2", directory.file("top.qcow2"))
        try expectSameInfo(directory.file("top.qcow2"))
    }

    @Test func snapshotsAndDirtyImages() throws {
        let path = directory.file("snap.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", path, "16M")
        try tool("qemu-io", "-c", "write 0 64k", path)
        try tool("qemu-img", "snapshot", "-c", "first", path)
        try tool("qemu-img", "snapshot", "-c", "a rather long snapshot name", path)
        try expectSameInfo(path)

        let dirty = directory.file("dirty.qcow2")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", dirty, "16M")
        _ = try run(["qemu-io", "-c", "write 0 64k", "-c", "abort", dirty])
        try expectSameInfo(dirty)
    }

    @Test func openFailures() throws {
        let missing = directory.file("missing")
        let error = #expect(throws: ImageToolError.self) { try ImageInfo.read(filename: missing, format: nil) }
        #expect(error?.printed == (try run(["qemu-img", "info", missing])).errors)
        let raw = directory.file("plain.raw")
        FileManager.default.createFile(atPath: raw, contents: Data(count: 4096))
        let wrongFormat = #expect(throws: ImageToolError.self) { try ImageInfo.read(filename: raw, format: "qcow2") }
        #expect(wrongFormat?.printed == (try run(["qemu-img", "info", "-f", "qcow2", raw])).errors)
    }

    @Test func humanSizes() {
        #expect(ImageSize.humanReadable(0) == "0 B")
        #expect(ImageSize.humanReadable(1024) == "1 KiB")
        #expect(ImageSize.humanReadable(999) == "999 B")
        #expect(ImageSize.humanReadable(1000) == "0.977 KiB")
        #expect(ImageSize.humanReadable(3_502_080) == "3.34 MiB")
        #expect(ImageSize.humanReadable(197_120) == "192 KiB")
        #expect(ImageSize.humanReadable(1 << 40) == "1 TiB")
    }
}
