import BlockCore
import BlockDrivers

/// The image formats the tools know, and how they tell them apart.
enum ImageFormat {
    /// qcow2 when the file starts with its magic, else raw (qemu-img's probe, for the two
    /// formats we support).
    static func probe(_ file: ImageFile) throws(BlockError) -> String {
        Qcow2ByteReader(try file.read(at: 0, count: 4)).u32(0) == Qcow2Header.magic ? "qcow2" : "raw"
    }

    /// The format given, or the probed one.
    static func named(_ format: String?, file: ImageFile) throws(ImageToolError) -> String {
        if let format { return format }
        return try ImageToolError.opening(file.path) { () throws(BlockError) in try probe(file) }
    }

    /// A raw image's virtual size: the file size rounded up to whole 512-byte sectors.
    static func rawSize(_ fileSize: UInt64) -> UInt64 { (fileSize + 511) / 512 * 512 }

    /// The virtual size of an image (a backing file for `create`).
    static func virtualSize(of path: String, format: String) throws(ImageToolError) -> UInt64 {
        let file = try ImageToolError.plain { () throws(BlockError) in try ImageFile(path: path, writable: false) }
        defer { file.close() }
        switch format {
        case "raw": return rawSize(file.size)
        case "qcow2": return try ImageToolError.plain { () throws(BlockError) in try Qcow2Image(file: file).header.size }
        default: throw unsupported(format)
        }
    }

    static func unsupported(_ format: String) -> ImageToolError {
        ImageToolError("Image format '\(format)' is not supported (only raw and qcow2)")
    }
}

extension ImageToolError {
    /// Runs `body`; a block layer error becomes `Could not open '<file>': <error>`.
    static func opening<T>(_ filename: String, _ body: () throws(BlockError) -> T) throws(ImageToolError) -> T {
        do {
            return try body()
        } catch {
            throw ImageToolError("Could not open '\(filename)': \(error.description)")
        }
    }

    /// Runs `body`; a block layer error becomes its text.
    static func plain<T>(_ body: () throws(BlockError) -> T) throws(ImageToolError) -> T {
        do {
            return try body()
        } catch {
            throw ImageToolError(error.description)
        }
    }
}
