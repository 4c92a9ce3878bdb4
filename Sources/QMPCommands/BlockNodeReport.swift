import BlockCore
import BlockDrivers
import JSON

/// How the block layer's nodes look on QMP: `query-named-block-nodes` (`BlockDeviceInfo`)
/// and `query-blockstats` (`BlockStats`). Members come in the order qemu-storage-daemon
/// prints them, which makes side-by-side reading of the two daemons easy.
enum BlockNodeReport {
    /// One `BlockDeviceInfo`; `flat` leaves out the nested `backing-image`.
    static func deviceInfo(_ node: BlockNode, flat: Bool) -> JSONValue {
        let filename = self.filename(of: node)
        let options = node.options
        var info: JSONObject = [
            "iops_rd": 0,
            "detect_zeroes": .string(options.detectZeroes.rawValue),
            "image": .object(imageInfo(node, flat: flat)),
            "iops_wr": 0,
            "ro": .bool(options.readOnly),
            "node-name": .string(node.name),
            // QEMU counts the nested backing images, which `flat` leaves out.
            "backing_file_depth": .int(flat ? 0 : Int64(backingChain(of: node).count)),
            "drv": .string(node.driver.driverName),
            "iops": 0,
            "bps_wr": 0,
            "write_threshold": .threshold(node.writeThreshold),
            "encrypted": false,
            "bps": 0,
            "bps_rd": 0,
            "cache": ["no-flush": .bool(options.cacheNoFlush), "direct": .bool(options.cacheDirect), "writeback": true],
            "file": .string(filename),
        ]
        if let backing = (node.driver as? Qcow2Driver)?.imageInfo.fullBackingFilename {
            info["backing_file"] = .string(backing)
        }
        return .object(info)
    }

    /// `ImageInfo`: what the node's format says of the image, with its backing image nested.
    private static func imageInfo(_ node: BlockNode, flat: Bool) -> JSONObject {
        let info = node.imageInfo
        var image: JSONObject = [
            // QEMU counts sizes in 512-byte sectors, rounded up.
            "virtual-size": .unsigned((info.virtualSize + 511) & ~511),
            "filename": .string(filename(of: node)),
            "format": .string(info.format),
        ]
        if let actual = info.actualSize { image["actual-size"] = .unsigned(actual) }
        if let dirty = info.dirtyFlag { image["dirty-flag"] = .bool(dirty) }
        if let qcow2 = node.driver as? Qcow2Driver {
            let q = qcow2.imageInfo
            image["cluster-size"] = .unsigned(q.clusterSize)
            image["dirty-flag"] = .bool(q.isDirty)
            var data: JSONObject = [
                "compat": .string(q.compat),
                "compression-type": .string(q.compressionType),
                "refcount-bits": .int(Int64(q.refcountBits)),
            ]
            if q.compat != "0.10" {
                data["lazy-refcounts"] = .bool(q.lazyRefcounts)
                data["corrupt"] = .bool(q.isCorrupt)
                data["extended-l2"] = .bool(q.extendedL2)
            }
            image["format-specific"] = ["type": "qcow2", "data": .object(data)]
            if let backing = q.backingFilename { image["backing-filename"] = .string(backing) }
            if let full = q.fullBackingFilename { image["full-backing-filename"] = .string(full) }
            if let format = q.backingFormat { image["backing-filename-format"] = .string(format) }
        }
        if !flat, let backing = backingChain(of: node).first {
            image["backing-image"] = .object(imageInfo(backing, flat: false))
        }
        return image
    }

    /// The backing nodes below `node`, nearest first.
    private static func backingChain(of node: BlockNode) -> [BlockNode] {
        var chain: [BlockNode] = []
        var current = node
        while let backing = current.driver.children.first(where: { $0.role == "backing" })?.node {
            chain.append(backing)
            current = backing
        }
        return chain
    }

    /// One `BlockStats` in node mode: the node's counters, and its `file` child's as `parent`
    /// (QEMU's misnomer), recursively.
    static func statistics(_ node: BlockNode) -> JSONValue {
        var entry: JSONObject = [:]
        if let file = node.driver.children.first(where: { $0.role == "file" })?.node {
            entry["parent"] = statistics(file)
        }
        entry["stats"] = stats(node.statistics.snapshot())
        entry["node-name"] = .string(node.name)
        if let specific = node.driver.specificStatistics {
            entry["driver-specific"] = [
                "discard-bytes-ok": .unsigned(specific.discardBytesSucceeded),
                "discard-nb-ok": .unsigned(specific.discardOperationsSucceeded),
                "driver": .string(specific.driver),
                "discard-nb-failed": .unsigned(specific.discardOperationsFailed),
            ]
        }
        return .object(entry)
    }

    private static func stats(_ s: BlockStatisticsSnapshot) -> JSONValue {
        let stats: JSONObject = [
            "unmap_operations": .unsigned(s.unmap.operations),
            "unmap_merged": 0,
            "flush_total_time_ns": .unsigned(s.flush.totalTimeNs),
            "wr_highest_offset": .unsigned(s.writeHighestOffset),
            "wr_total_time_ns": .unsigned(s.write.totalTimeNs),
            "failed_wr_operations": .unsigned(s.write.failed),
            "failed_rd_operations": .unsigned(s.read.failed),
            "wr_merged": 0,
            "wr_bytes": .unsigned(s.write.bytes),
            "timed_stats": [],
            "failed_unmap_operations": .unsigned(s.unmap.failed),
            "failed_flush_operations": .unsigned(s.flush.failed),
            "account_invalid": false,
            "rd_total_time_ns": .unsigned(s.read.totalTimeNs),
            "invalid_unmap_operations": .unsigned(s.unmap.invalid),
            "flush_operations": .unsigned(s.flush.operations),
            "wr_operations": .unsigned(s.write.operations),
            "unmap_bytes": .unsigned(s.unmap.bytes),
            "rd_merged": 0,
            "rd_bytes": .unsigned(s.read.bytes),
            "unmap_total_time_ns": .unsigned(s.unmap.totalTimeNs),
            "invalid_flush_operations": .unsigned(s.flush.invalid),
            "account_failed": false,
            "rd_operations": .unsigned(s.read.operations),
            "invalid_wr_operations": .unsigned(s.write.invalid),
            "invalid_rd_operations": .unsigned(s.read.invalid),
        ]
        return .object(stats)
    }

    /// The node's filename, or `json:{...}` of its options when no filename describes it.
    static func filename(of node: BlockNode) -> String {
        switch node.filename {
        case .plain(let name): name
        case .json(let options): "json:" + String(decoding: JSONValue(options).serialized(), as: UTF8.self)
        }
    }
}

extension JSONValue {
    /// A write threshold as QEMU prints it: a uint64 member, which QEMU's output visitor
    /// prints as a signed number (2^64-1 reads back as -1).
    static func threshold(_ value: UInt64) -> JSONValue { .int(Int64(bitPattern: value)) }

    init(_ options: BlockOptionObject) {
        self = .object(JSONObject(options.members.map { (key: $0.key, value: JSONValue($0.value)) }))
    }

    init(_ value: BlockOptionValue) {
        switch value {
        case .string(let s): self = .string(s)
        case .integer(let i): self = .int(i)
        case .unsigned(let u): self = .unsigned(u)
        case .boolean(let b): self = .bool(b)
        case .object(let o): self = JSONValue(o)
        }
    }
}
