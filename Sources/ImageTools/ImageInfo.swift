import BlockCore
import BlockDrivers
import JSON

#if canImport(Glibc)
import Glibc
#endif

/// What `qemu-img info` reports about one image (QAPI `ImageInfo`), without the backing chain.
public struct ImageInfo: Equatable, Sendable {
    public var filename: String
    public var format: String
    public var dirtyFlag: Bool
    /// Bytes the file occupies on disk.
    public var actualSize: UInt64?
    public var virtualSize: UInt64
    public var clusterSize: UInt64?
    public var backingFilename: String?
    public var fullBackingFilename: String?
    public var backingFormat: String?
    public var snapshots: [Qcow2Snapshot] = []
    /// `format-specific` as qemu-img builds it: `{"type": ..., "data": {...}}`.
    public var formatSpecific: JSONObject?

    /// Inspects `filename`; `format` nil probes (qcow2 by its magic, else raw).
    public static func read(filename: String, format: String?) throws(ImageToolError) -> ImageInfo {
        let file = try ImageToolError.opening(filename) { () throws(BlockError) in try ImageFile(path: filename, writable: false) }
        defer { file.close() }
        let chosen = try ImageFormat.named(format, file: file)
        switch chosen {
        case "raw":
            return ImageInfo(
                filename: filename, format: "raw", dirtyFlag: false, actualSize: file.allocatedSize,
                virtualSize: ImageFormat.rawSize(file.size))
        case "qcow2":
            let image = try ImageToolError.opening(filename) { () throws(BlockError) in try Qcow2Image(file: file) }
            let snapshots = try ImageToolError.opening(filename) { () throws(BlockError) in try image.readSnapshots() }
            return qcow2(image, filename: filename, snapshots: snapshots)
        default:
            throw ImageFormat.unsupported(chosen)
        }
    }

    private static func qcow2(_ image: Qcow2Image, filename: String, snapshots: [Qcow2Snapshot]) -> ImageInfo {
        let header = image.header
        var data = JSONObject()
        if header.version == 2 {
            data["compat"] = "0.10"
            data["refcount-bits"] = .int(Int64(1) << Int64(header.refcountOrder))
        } else {
            data["compat"] = "1.1"
            data["extended-l2"] = .bool(header.incompatibleFeatures & Qcow2Header.Incompatible.extendedL2 != 0)
            data["lazy-refcounts"] = .bool(header.compatibleFeatures & Qcow2Header.Compatible.lazyRefcounts != 0)
            data["corrupt"] = .bool(header.incompatibleFeatures & Qcow2Header.Incompatible.corrupt != 0)
            data["refcount-bits"] = .int(Int64(1) << Int64(header.refcountOrder))
        }
        data["compression-type"] = .string(header.compressionType == 0 ? "zlib" : "zstd")
        let backing = header.backingFile
        return ImageInfo(
            filename: filename, format: "qcow2",
            dirtyFlag: header.incompatibleFeatures & Qcow2Header.Incompatible.dirty != 0,
            actualSize: image.file.allocatedSize, virtualSize: header.size, clusterSize: header.clusterSize,
            backingFilename: backing,
            fullBackingFilename: backing.map { Qcow2Driver.resolve(backingFile: $0, relativeTo: filename) },
            backingFormat: header.backingFormat, snapshots: snapshots,
            formatSpecific: ["type": "qcow2", "data": .object(data)])
    }

    // MARK: Output

    /// `--output json`: QEMU's pretty JSON, members in QDict order.
    public var json: String {
        var object = JSONObject()
        object["filename"] = .string(filename)
        object["format"] = .string(format)
        object["dirty-flag"] = .bool(dirtyFlag)
        if let actualSize { object["actual-size"] = .unsigned(actualSize) }
        object["virtual-size"] = .unsigned(virtualSize)
        if let clusterSize { object["cluster-size"] = .unsigned(clusterSize) }
        if let backingFilename { object["backing-filename"] = .string(backingFilename) }
        if let fullBackingFilename { object["full-backing-filename"] = .string(fullBackingFilename) }
        if let backingFormat { object["backing-filename-format"] = .string(backingFormat) }
        if !snapshots.isEmpty { object["snapshots"] = .array(snapshots.map { .object($0.json) }) }
        if let formatSpecific { object["format-specific"] = .object(formatSpecific) }
        return ImageOutput.json(.object(object))
    }

    /// The human-readable form.
    public var human: String {
        var text = """
            image: \(filename)
            file format: \(format)
            virtual size: \(ImageSize.humanReadable(virtualSize)) (\(virtualSize) bytes)
            disk size: \(actualSize.map(ImageSize.humanReadable) ?? "unavailable")

            """
        if let clusterSize { text += "cluster_size: \(clusterSize)\n" }
        if dirtyFlag { text += "cleanly shut down: no\n" }
        if let backingFilename {
            text += "backing file: \(backingFilename)"
            if let fullBackingFilename {
                if fullBackingFilename != backingFilename { text += " (actual path: \(fullBackingFilename))" }
            } else {
                text += " (cannot determine actual path)"
            }
            text += "\n"
        }
        if let backingFormat { text += "backing file format: \(backingFormat)\n" }
        if !snapshots.isEmpty {
            text += "Snapshot list:\n" + Qcow2Snapshot.humanHeader + "\n"
            for snapshot in snapshots { text += snapshot.human + "\n" }
        }
        if let formatSpecific, let data = formatSpecific["data"] {
            text += "Format specific information:\n" + ImageOutput.dump(data, indentation: 1)
        }
        return text
    }
}

extension Qcow2Snapshot {
    /// QAPI `SnapshotInfo`.
    var json: JSONObject {
        var object = JSONObject()
        object["id"] = .string(id)
        object["name"] = .string(name)
        object["vm-state-size"] = .unsigned(vmStateSize)
        object["date-sec"] = .unsigned(UInt64(dateSeconds))
        object["date-nsec"] = .unsigned(UInt64(dateNanoseconds))
        object["vm-clock-sec"] = .unsigned(vmClockNanoseconds / 1_000_000_000)
        object["vm-clock-nsec"] = .unsigned(vmClockNanoseconds % 1_000_000_000)
        if let icount { object["icount"] = .unsigned(icount) }
        return object
    }

    static var humanHeader: String {
        pad("ID", 10) + pad("TAG", 17) + pad("VM SIZE", -8) + pad("DATE", -20) + pad("VM CLOCK", -13) + pad("ICOUNT", -11)
    }

    /// One line of the snapshot list, in local time as QEMU prints it.
    var human: String {
        var time = time_t(dateSeconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        let date = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let seconds = vmClockNanoseconds / 1_000_000_000
        let clock = Self.twoDigits(seconds / 3600) + ":" + Self.twoDigits((seconds / 60) % 60) + ":"
            + Self.twoDigits(seconds % 60) + "." + Self.pad(String((vmClockNanoseconds / 1_000_000) % 1000), -3, fill: "0")
        return Self.pad(id, 9) + " " + Self.pad(name, 16) + " " + Self.pad(ImageSize.humanReadable(vmStateSize), -8)
            + Self.pad(date, -20) + Self.pad(clock, -13) + Self.pad(icount.map { String($0) } ?? "", -11)
    }

    private static func twoDigits(_ value: UInt64) -> String { pad(String(value), -2, fill: "0") }

    /// printf's `%-Ns` (positive width) and `%Ns` (negative width: right-aligned).
    static func pad(_ text: String, _ width: Int, fill: Character = " ") -> String {
        let missing = abs(width) - text.count
        guard missing > 0 else { return text }
        let padding = String(repeating: fill, count: missing)
        return width > 0 ? text + padding : padding + text
    }
}
