import BlockCore
import BlockDrivers
import QAPI

/// QAPI `BlockdevOptions`: what `blockdev-add` and `--blockdev` describe, decoded in full
/// (with QEMU's member order and error texts) before anything is opened.
struct BlockdevOptions: QAPIStruct {
    /// Every driver name QEMU's schema knows, so that unknown names get QEMU's enum error and
    /// known-but-unsupported ones a clear "not supported" error.
    static let schemaDrivers = [
        "blkdebug", "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress",
        "copy-before-write", "copy-on-read", "dmg", "file", "snapshot-access", "ftp", "ftps", "gluster",
        "host_cdrom", "host_device", "http", "https", "iscsi", "luks", "nbd", "nfs", "null-aio", "null-co",
        "nvme", "parallels", "preallocate", "qcow", "qcow2", "qed", "quorum", "raw", "rbd", "replication",
        "ssh", "throttle", "vdi", "vhdx", "vmdk", "vpc", "vvfat",
    ]

    enum Specific {
        case file(FileOptions)
        case hostDevice(FileOptions)
        case raw(RawOptions, file: BlockdevRef)
        case qcow2(Qcow2Options, file: BlockdevRef, backing: BackingReference)
        case null(NullOptions, NullDriver.Variant)
    }

    var driver: String
    var nodeName: String?
    // nil = not given: an inline child then inherits its parent's value, as in QEMU.
    var discard: BlockNodeOptions.DiscardMode?
    var cacheDirect: Bool?
    var cacheNoFlush: Bool?
    var readOnly: Bool?
    var detectZeroes: BlockNodeOptions.DetectZeroes
    var specific: Specific

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        driver = try members.requiredEnum("driver", values: Self.schemaDrivers)
        nodeName = try members.optional("node-name")
        discard = try members.optional("discard")
        if let cacheInput = members.optionalInput("cache") {
            var cache = try cacheInput.object()
            cacheDirect = try cache.optional("direct")
            cacheNoFlush = try cache.optional("no-flush")
            try cache.finish()
        }
        readOnly = try members.optional("read-only")
        _ = try members.optional("auto-read-only", as: Bool.self)
        _ = try members.optional("force-share", as: Bool.self)
        detectZeroes = try members.optional("detect-zeroes", default: .off)

        switch driver {
        case "file", "host_device":
            let filename: String = try members.required("filename")
            _ = try members.optional("pr-manager", as: String.self)
            let locking = try members.optional("locking", default: FileOptions.Locking.auto)
            let aio = try members.optional("aio", default: FileOptions.AIO.threads)
            _ = try members.optional("aio-max-batch", as: Int64.self)
            _ = try members.optional("drop-cache", as: Bool.self)
            _ = try members.optional("x-check-cache-dropped", as: Bool.self)
            // HighWater's own member, for `file` only: a device is always a volume.
            let volume = driver == "file" ? try members.optional("__io.highwater_volume", default: false) : false
            let options = FileOptions(filename: filename, aio: aio, locking: locking, volume: volume)
            specific = driver == "file" ? .file(options) : .hostDevice(options)
        case "raw":
            let file = try members.required("file", as: BlockdevRef.self)
            let offset = try members.optional("offset", as: Int64.self)
            let size = try members.optional("size", as: Int64.self)
            specific = .raw(RawOptions(offset: offset, size: size), file: file)
        case "qcow2":
            let file = try members.required("file", as: BlockdevRef.self)
            let backing: BackingReference = try members.optional("backing") ?? .fromHeader
            var options = Qcow2Options()
            options.lazyRefcounts = try members.optional("lazy-refcounts")
            options.passDiscardRequest = try members.optional("pass-discard-request")
            options.passDiscardSnapshot = try members.optional("pass-discard-snapshot")
            options.passDiscardOther = try members.optional("pass-discard-other")
            options.overlapCheck = members.optionalInput("overlap-check").map { $0.value.stringValue ?? "custom" }
            options.cacheSize = try members.optional("cache-size")
            options.l2CacheSize = try members.optional("l2-cache-size")
            options.l2CacheEntrySize = try members.optional("l2-cache-entry-size")
            options.refcountCacheSize = try members.optional("refcount-cache-size")
            options.cacheCleanInterval = try members.optional("cache-clean-interval")
            if members.contains("encrypt") { throw QAPIError("Encrypted qcow2 images are not supported by HighWater") }
            if members.contains("data-file") { throw QAPIError("qcow2 external data files are not supported by HighWater") }
            specific = .qcow2(options, file: file, backing: backing)
        case "null-co", "null-aio":
            let size = try members.optional("size", as: Int64.self)
            let latency = try members.optional("latency-ns", as: Int64.self)
            let readZeroes = try members.optional("read-zeroes", as: Bool.self)
            specific = .null(
                NullOptions(size: size, readZeroes: readZeroes, latencyNanoseconds: latency),
                driver == "null-co" ? .co : .aio)
        default:
            throw QAPIError("Driver '\(driver)' is not supported by HighWater")
        }
    }

    /// The node options common to every driver. An inline child inherits what it does not
    /// set from its parent (`read-only`, `discard`, `cache.*`; not `detect-zeroes`).
    func nodeOptions(name: String, isExplicit: Bool, parent: BlockNodeOptions?) -> BlockNodeOptions {
        BlockNodeOptions(
            nodeName: name,
            readOnly: readOnly ?? parent?.readOnly ?? false,
            discard: discard ?? parent?.discard ?? .ignore,
            cacheDirect: cacheDirect ?? parent?.cacheDirect ?? false,
            cacheNoFlush: cacheNoFlush ?? parent?.cacheNoFlush ?? false,
            detectZeroes: detectZeroes,
            isExplicit: isExplicit)
    }
}

/// QAPI `BlockdevRef`: an existing node by name, or an inline definition of a new one.
indirect enum BlockdevRef: QAPIDecodable {
    case reference(String)
    case inline(BlockdevOptions)

    init(qapi input: QAPIInput) throws(QAPIError) {
        switch input.value {
        case .string(let name): self = .reference(name)
        case .object: self = .inline(try BlockdevOptions(qapi: input))
        default: throw input.invalidAlternate("BlockdevRef")
        }
    }
}

/// QAPI `BlockdevRefOrNull` for a format's `backing`, plus "not given": open what the image
/// header names.
enum BackingReference: QAPIDecodable {
    case fromHeader
    case none
    case reference(BlockdevRef)

    init(qapi input: QAPIInput) throws(QAPIError) {
        switch input.value {
        case .null: self = .none
        case .string, .object: self = .reference(try BlockdevRef(qapi: input))
        default: throw input.invalidAlternate("BlockdevRefOrNull")
        }
    }
}

// The enums of `BlockdevOptions` are the block layer's own, spelled as QEMU spells them.
extension BlockNodeOptions.DiscardMode: QAPIEnum {
    public static var allCases: [Self] { [.ignore, .unmap] }
}
extension BlockNodeOptions.DetectZeroes: QAPIEnum {
    public static var allCases: [Self] { [.off, .on, .unmap] }
}
extension FileOptions.Locking: QAPIEnum {}
extension FileOptions.AIO: QAPIEnum {}
