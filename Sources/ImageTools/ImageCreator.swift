import BlockCore
import BlockDrivers
import QAPI

/// `qemu-img create`'s arguments.
public struct ImageCreateRequest: Equatable, Sendable {
    public var filename: String
    /// `-f`: `raw` (default) or `qcow2`.
    public var format: String
    /// `-o` option lists, in order.
    public var options: [String]
    /// `-b` and `-F`.
    public var backingFile: String?
    public var backingFormat: String?
    /// The size argument as typed (`10G`); nil takes the backing file's size.
    public var size: String?
    /// `-u`: do not open the backing file.
    public var unsafe: Bool
    /// `-q`: no `Formatting` line.
    public var quiet: Bool

    public init(
        filename: String, format: String = "raw", options: [String] = [], backingFile: String? = nil,
        backingFormat: String? = nil, size: String? = nil, unsafe: Bool = false, quiet: Bool = false
    ) {
        self.filename = filename
        self.format = format
        self.options = options
        self.backingFile = backingFile
        self.backingFormat = backingFormat
        self.size = size
        self.unsafe = unsafe
        self.quiet = quiet
    }
}

/// Creates raw and qcow2 images as `qemu-img create` does, with its checks, messages and
/// the `Formatting '...'` line.
public enum ImageCreator {
    /// Creates the image. `print` receives the `Formatting` line (which qemu-img prints even
    /// when the format then refuses the options).
    public static func create(_ request: ImageCreateRequest, print: (String) -> Void) throws(ImageToolError) {
        var size: UInt64?
        if let text = request.size {
            guard let value = SizeSyntax.parse(text) else {
                throw ImageToolError("""
                    Invalid image size specified. You may use k, M, G, T, P or E suffixes for
                    \(ImageToolError.programName): kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.
                    """)
            }
            guard value <= UInt64(Int64.max) else {
                throw ImageToolError("Invalid image size specified. Must be between 0 and \(Int64.max).")
            }
            size = value
        }
        // From here on, qemu-img names the image in front of each message.
        do {
            try create(request, size: size, print: print)
        } catch {
            throw ImageToolError("\(request.filename): \(error.message)", exitCode: error.exitCode, endsWithNewline: error.endsWithNewline)
        }
    }

    private static func create(_ request: ImageCreateRequest, size: UInt64?, print: (String) -> Void) throws(ImageToolError) {
        guard let descriptors = ImageCreateOptions.descriptors(format: request.format) else {
            throw ImageToolError("Unknown file format '\(request.format)'")
        }
        var options = ImageCreateOptions(descriptors: descriptors)
        for list in request.options { try options.parse(list) }
        if let size {
            guard !options.isSet("size") else { throw ImageToolError("The image size must be specified only once") }
            options.set("size", .size(size))
        }
        if request.backingFile != nil && request.format == "raw" {
            throw ImageToolError("Backing file not supported for file format 'raw'")
        }
        if let backingFile = request.backingFile { options.set("backing_file", .string(backingFile)) }
        if let backingFormat = request.backingFormat { options.set("backing_fmt", .string(backingFormat)) }

        if let backingFile = options.string("backing_file") {
            let resolved = Qcow2Driver.resolve(backingFile: backingFile, relativeTo: request.filename)
            guard let backingFormat = options.string("backing_fmt") else {
                var message = "Backing file specified without backing format"
                var endsWithNewline = true
                if let detected = try? ImageToolError.plain({ () throws(BlockError) -> String in
                    let file = try ImageFile(path: resolved, writable: false)
                    defer { file.close() }
                    return try ImageFormat.probe(file)
                }) {
                    message += "\nDetected format of \(detected)."
                    endsWithNewline = false
                }
                throw ImageToolError(message, endsWithNewline: endsWithNewline)
            }
            if !request.unsafe {
                do {
                    let backingSize = try ImageFormat.virtualSize(of: resolved, format: backingFormat)
                    if !options.isSet("size") { options.set("size", .size(backingSize)) }
                } catch {
                    throw ImageToolError(error.message + "\nCould not open backing image.")
                }
            }
        }
        guard let virtualSize = options.number("size") else { throw ImageToolError("Image creation needs a size parameter") }

        if !request.quiet {
            let optionText = options.printed
            print("Formatting '\(request.filename)', fmt=\(request.format)" + (optionText.isEmpty ? "" : " " + optionText) + "\n")
        }
        let roundedSize = (virtualSize + 511) / 512 * 512
        switch request.format {
        case "qcow2":
            let builder = try qcow2Builder(options, size: roundedSize)
            _ = try builder.layout()
            let file = try createFile(request.filename)
            defer { file.close() }
            try builder.write(to: file)
        default:
            let file = try createFile(request.filename)
            defer { file.close() }
            try ImageToolError.plain { () throws(BlockError) in
                try file.truncate(to: 0)
                try file.truncate(to: roundedSize)
                // QEMU writes the first block so that later alignment probes find it allocated.
                if roundedSize > 0 { try file.write(at: 0, [UInt8](repeating: 0, count: Int(min(roundedSize, 4096)))) }
                try file.flush()
            }
        }
    }

    private static func createFile(_ path: String) throws(ImageToolError) -> ImageFile {
        try ImageToolError.plain { () throws(BlockError) in try ImageFile.create(path: path) }
    }

    /// The qcow2 options checked in QEMU's order, with its messages.
    private static func qcow2Builder(_ options: ImageCreateOptions, size: UInt64) throws(ImageToolError) -> Qcow2ImageBuilder {
        var builder = Qcow2ImageBuilder(size: size)
        switch options.string("compat") {
        case nil, "1.1", "v3": builder.version = 3
        case "0.10", "v2": builder.version = 2
        case let other?: throw ImageToolError("Parameter 'version' does not accept value '\(other)'")
        }
        switch options.string("compression_type") {
        case nil, "zlib": builder.compressionType = 0
        case "zstd": builder.compressionType = 1
        case let other?: throw ImageToolError("Parameter 'compression-type' does not accept value '\(other)'")
        }
        if options.flag("extended_l2") == true {
            throw ImageToolError("Extended L2 entries (subclusters) are not supported by highwater")
        }
        let clusterSize = options.number("cluster_size") ?? 65536
        guard clusterSize.nonzeroBitCount == 1, clusterSize >= 512, clusterSize <= 2 << 20 else {
            throw ImageToolError("Cluster size must be a power of two between 512 and 2048k")
        }
        builder.clusterBits = clusterSize.trailingZeroBitCount
        builder.lazyRefcounts = options.flag("lazy_refcounts") ?? false
        if builder.lazyRefcounts && builder.version < 3 {
            throw ImageToolError("Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)")
        }
        let refcountBits = options.number("refcount_bits") ?? 16
        guard refcountBits.nonzeroBitCount == 1, refcountBits <= 64 else {
            throw ImageToolError("Refcount width must be a power of two and may not exceed 64 bits")
        }
        if builder.version < 3 && refcountBits != 16 {
            throw ImageToolError("Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)")
        }
        builder.refcountOrder = refcountBits.trailingZeroBitCount
        if builder.compressionType != 0 && builder.version < 3 {
            throw ImageToolError("Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)")
        }
        if options.string("backing_fmt") != nil && options.string("backing_file") == nil {
            throw ImageToolError("Backing format cannot be used without backing file")
        }
        builder.backingFile = options.string("backing_file")
        builder.backingFormat = options.string("backing_fmt")
        return builder
    }
}
