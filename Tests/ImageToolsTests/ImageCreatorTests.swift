import Foundation
import Testing
@testable import ImageTools

/// `ImageCreator` against `qemu-img create`: same bytes, same disk usage, same
/// `Formatting` line, same `qemu-img info`, same errors.
@Suite struct ImageCreatorTests {
    let directory = TemporaryDirectory()

    /// Creates the same image with both tools (in folders `ours/` and `qemu/`, each with a
    /// raw and a qcow2 backing file) and returns both paths and what each printed.
    private func createBoth(_ request: ImageCreateRequest) throws -> (ours: String, qemu: String, ourLine: String, qemuLine: String) {
        for side in ["ours", "qemu"] {
            let folder = directory.file(side)
            if !FileManager.default.fileExists(atPath: folder) {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try tool("qemu-img", "create", "-q", "-f", "raw", folder + "/base.raw", "3M")
                try tool("qemu-img", "create", "-q", "-f", "qcow2", folder + "/base.qcow2", "5M")
            }
        }
        var ours = request
        ours.filename = directory.file("ours/" + request.filename)
        var line = ""
        try ImageCreator.create(ours) { line += $0 }

        var arguments = ["qemu-img", "create", "-f", request.format]
        for list in request.options { arguments += ["-o", list] }
        if let backing = request.backingFile { arguments += ["-b", backing] }
        if let format = request.backingFormat { arguments += ["-F", format] }
        arguments.append(directory.file("qemu/" + request.filename))
        if let size = request.size { arguments.append(size) }
        let qemu = try run(arguments)
        try #require(qemu.status == 0, "\(qemu.errors)")
        return (ours.filename, directory.file("qemu/" + request.filename),
                line.replacingOccurrences(of: "/ours/", with: "/qemu/"), qemu.output)
    }

    static let cases: [ImageCreateRequest] = [
        ImageCreateRequest(filename: "default.qcow2", format: "qcow2", size: "1G"),
        ImageCreateRequest(filename: "v2.qcow2", format: "qcow2", options: ["compat=0.10,cluster_size=4096"], size: "10G"),
        ImageCreateRequest(filename: "lazy.qcow2", format: "qcow2", options: ["refcount_bits=1", "lazy_refcounts=on"], size: "1T"),
        ImageCreateRequest(filename: "zstd.qcow2", format: "qcow2", options: ["compression_type=zstd,refcount_bits=64"], size: "1000"),
        ImageCreateRequest(filename: "small.qcow2", format: "qcow2", options: ["cluster_size=512"], size: "1G"),
        ImageCreateRequest(filename: "big.qcow2", format: "qcow2", options: ["cluster_size=2M,compat=1.1"], size: "100T"),
        ImageCreateRequest(filename: "empty.qcow2", format: "qcow2", size: "0"),
        ImageCreateRequest(filename: "overlay.qcow2", format: "qcow2", backingFile: "base.qcow2", backingFormat: "qcow2"),
        ImageCreateRequest(filename: "v2-overlay.qcow2", format: "qcow2", options: ["compat=0.10"], backingFile: "base.raw", backingFormat: "raw", size: "8M"),
        ImageCreateRequest(filename: "small-overlay.qcow2", format: "qcow2", options: ["cluster_size=1k"], backingFile: "base.raw", backingFormat: "raw"),
        ImageCreateRequest(filename: "disk.raw", size: "513"),
        ImageCreateRequest(filename: "disk0.raw", size: "0"),
    ]

    @Test(arguments: cases)
    func imageIsWhatQemuImgCreates(_ request: ImageCreateRequest) throws {
        let created = try createBoth(request)
        #expect(created.ourLine == created.qemuLine)
        #expect(bytes(of: created.ours) == bytes(of: created.qemu))
        let ourInfo = try tool("qemu-img", "info", "--output", "json", created.ours).output
        let qemuInfo = try tool("qemu-img", "info", "--output", "json", created.qemu).output
        #expect(ourInfo.replacingOccurrences(of: "/ours/", with: "/qemu/") == qemuInfo)
        if request.format == "qcow2" {
            #expect(try run(["qemu-img", "check", created.ours]).status == 0)
        }
    }

    /// (arguments after `create`, expected exit status) — messages must match qemu-img's.
    static let failures: [[String]] = [
        ["-f", "qcow2", "x.qcow2", "1Q"],
        ["-f", "qcow2", "x.qcow2", "1.5"],
        ["-f", "qcow2", "x.qcow2"],
        ["-f", "qcow2", "-o", "foo=1", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "lazy_refcounts=maybe", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "cluster_size=abc", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "compat=0.10,lazy_refcounts=on", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "compat=0.10,refcount_bits=8", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "cluster_size=3000", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "refcount_bits=3", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "compat=2", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "size=2M", "x.qcow2", "1M"],
        ["-f", "qcow2", "-o", "cluster_size=65536", "x.qcow2", "4P"],
        ["-f", "qcow2", "-b", "missing.qcow2", "-F", "qcow2", "x.qcow2"],
        ["-f", "qcow2", "-b", "base.raw", "-F", "qcow2", "x.qcow2", "1M"],
        ["-f", "qcow2", "-b", "base.qcow2", "x.qcow2"],
        ["-f", "raw", "-b", "base.raw", "-F", "raw", "x.raw"],
        ["-f", "vmdk2", "x.img", "1M"],
    ]

    @Test(arguments: failures)
    func failsLikeQemuImg(_ arguments: [String]) throws {
        let folder = directory.path
        try tool("qemu-img", "create", "-q", "-f", "raw", folder + "/base.raw", "3M")
        try tool("qemu-img", "create", "-q", "-f", "qcow2", folder + "/base.qcow2", "5M")
        // qemu-img resolves names against the current folder; give both absolute paths.
        let absolute = arguments.enumerated().map { index, argument in
            index > 0 && ["-b"].contains(arguments[index - 1]) || argument.hasPrefix("x.") ? folder + "/" + argument : argument
        }
        let qemu = try run(["qemu-img", "create"] + absolute)
        #expect(qemu.status == 1)

        var request = ImageCreateRequest(filename: "")
        var positional: [String] = []
        var index = 0
        while index < absolute.count {
            switch absolute[index] {
            case "-f": request.format = absolute[index + 1]; index += 1
            case "-o": request.options.append(absolute[index + 1]); index += 1
            case "-b": request.backingFile = absolute[index + 1]; index += 1
            case "-F": request.backingFormat = absolute[index + 1]; index += 1
            default: positional.append(absolute[index])
            }
            index += 1
        }
        request.filename = positional[0]
        request.size = positional.count > 1 ? positional[1] : nil
        var line = ""
        let error = #expect(throws: ImageToolError.self) { try ImageCreator.create(request) { line += $0 } }
        #expect(line == qemu.output)
        #expect(error?.printed == qemu.errors)
        #expect(!FileManager.default.fileExists(atPath: request.filename))
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        components(separatedBy: target).joined(separator: replacement)
    }
}
