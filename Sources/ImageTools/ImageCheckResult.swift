import BlockCore
import JSON

/// What `qemu-img check` found (QAPI `ImageCheck`), with the per-problem messages it
/// prints on standard error.
public struct ImageCheckResult: Equatable, Sendable {
    public var filename: String
    public var format: String
    public var checkErrors: UInt64 = 0
    public var corruptions: UInt64 = 0
    public var leaks: UInt64 = 0
    /// End of the last cluster in use or referenced: what the image needs of its file.
    public var imageEndOffset: UInt64 = 0
    public var totalClusters: UInt64 = 0
    public var allocatedClusters: UInt64 = 0
    public var fragmentedClusters: UInt64 = 0
    public var compressedClusters: UInt64 = 0
    /// One line per problem, as QEMU prints them while checking.
    public var messages: [String] = []

    public init(filename: String, format: String) {
        self.filename = filename
        self.format = format
    }

    /// Checks `filename`; `format` nil probes. raw images have no check (exit status 63).
    public static func check(filename: String, format: String?) throws(ImageToolError) -> ImageCheckResult {
        let file = try ImageToolError.opening(filename) { () throws(BlockError) in try ImageFile(path: filename, writable: false) }
        defer { file.close() }
        let chosen = try ImageFormat.named(format, file: file)
        switch chosen {
        case "qcow2":
            let image = try ImageToolError.opening(filename) { () throws(BlockError) in try Qcow2Image(file: file) }
            do {
                return try Qcow2Checker.check(image, filename: filename)
            } catch {
                throw ImageToolError("Check failed: \(error.description)")
            }
        case "raw":
            throw ImageToolError("This image format does not support checks", exitCode: 63)
        default:
            throw ImageFormat.unsupported(chosen)
        }
    }

    /// qemu-img's exit status: 1 internal errors, 2 corruptions, 3 leaks only, 0 clean.
    public var exitCode: Int32 {
        if checkErrors > 0 { return 1 }
        if corruptions > 0 { return 2 }
        if leaks > 0 { return 3 }
        return 0
    }

    public var human: String {
        var text = ""
        if corruptions == 0 && leaks == 0 && checkErrors == 0 {
            text += "No errors were found on the image.\n"
        } else {
            if corruptions > 0 {
                text += "\n\(corruptions) errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n"
            }
            if leaks > 0 {
                text += "\n\(leaks) leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n"
            }
            if checkErrors > 0 {
                text += "\n\(checkErrors) internal errors have occurred during the check.\n"
            }
        }
        if totalClusters != 0 && allocatedClusters != 0 {
            let allocated = Double(allocatedClusters)
            text += "\(allocatedClusters)/\(totalClusters) = "
                + cFormat("%0.2f", allocated * 100 / Double(totalClusters)) + "% allocated, "
                + cFormat("%0.2f", Double(fragmentedClusters) * 100 / allocated) + "% fragmented, "
                + cFormat("%0.2f", Double(compressedClusters) * 100 / allocated) + "% compressed clusters\n"
        }
        if imageEndOffset != 0 { text += "Image end offset: \(imageEndOffset)\n" }
        return text
    }

    /// `--output json`: optional members only when non-zero, as qemu-img.
    public var json: String {
        var object = JSONObject()
        object["filename"] = .string(filename)
        object["format"] = .string(format)
        object["check-errors"] = .unsigned(checkErrors)
        let optional: [(String, UInt64)] = [
            ("image-end-offset", imageEndOffset), ("corruptions", corruptions), ("leaks", leaks),
            ("total-clusters", totalClusters), ("allocated-clusters", allocatedClusters),
            ("fragmented-clusters", fragmentedClusters), ("compressed-clusters", compressedClusters),
        ]
        for (key, value) in optional where value != 0 { object[key] = .unsigned(value) }
        return ImageOutput.json(.object(object))
    }
}
