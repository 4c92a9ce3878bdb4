import JSON

/// What the controller needs to know about a managed protocol node, read from
/// `query-named-block-nodes` (flat).
public struct VolumeNodeInfo: Sendable, Equatable {
    public var nodeName: String
    /// `drv`: `host_device`, `file`, ...
    public var driver: String
    /// The host file or device (`file`).
    public var filename: String
    /// The volume's current size (`image.virtual-size` of the protocol node).
    public var capacity: UInt64
    /// The format node using this node as its file, if any (driver and virtual size).
    public var formatDriver: String?
    public var formatVirtualSize: UInt64?
    /// The nodes stacked on this one (same host file, not protocol nodes): I/O errors of
    /// an export name its node, which is one of these.
    public var formatNodeNames: [String]

    /// The names events about this volume may carry: its own node's, or one of the format
    /// nodes on it (an export's I/O errors and held writes name the export's node).
    public var eventNodeNames: [String] { [nodeName] + formatNodeNames }

    /// Drivers whose nodes are volumes (protocol nodes); a format node on top has the
    /// highest offset of its allocations tracked on them.
    public static let protocolDrivers: Set<String> = ["host_device", "file"]

    /// The nodes of a `query-named-block-nodes` reply (flat), indexed by name and by file:
    /// finding each of hundreds of volumes does not scan every node.
    public struct Catalog: Sendable {
        /// In QEMU's order (parents first).
        let nodes: [JSONValue]
        let byName: [String: Int]
        /// Positions of the nodes on each host file, in order.
        let byFile: [String: [Int]]

        public init(_ reply: JSONValue) {
            nodes = reply.arrayValue ?? []
            var byName: [String: Int] = [:]
            var byFile: [String: [Int]] = [:]
            for (position, node) in nodes.enumerated() {
                if let name = node["node-name"]?.stringValue, byName[name] == nil { byName[name] = position }
                if let file = node["file"]?.stringValue { byFile[file, default: []].append(position) }
            }
            self.byName = byName
            self.byFile = byFile
        }

        func nodes(onFile file: String?) -> [JSONValue] {
            file.map { (byFile[$0] ?? []).map { nodes[$0] } } ?? []
        }
    }

    /// Finds `nodeName` in the reply of `query-named-block-nodes` with `flat: true`.
    public static func find(_ nodeName: String, in reply: JSONValue) throws(VolumeNodeError) -> VolumeNodeInfo {
        try find(nodeName, in: Catalog(reply))
    }

    /// Finds `nodeName` among the nodes of `catalog`.
    public static func find(_ nodeName: String, in catalog: Catalog) throws(VolumeNodeError) -> VolumeNodeInfo {
        guard let position = catalog.byName[nodeName] else {
            throw .unknownNode(nodeName, known: catalog.nodes.compactMap { $0["node-name"]?.stringValue })
        }
        let node = catalog.nodes[position]
        let isProtocol = { (node: JSONValue) in protocolDrivers.contains(node["drv"]?.stringValue ?? "") }
        let driver = node["drv"]?.stringValue ?? ""
        guard protocolDrivers.contains(driver) else {
            // Name the protocol node under it, if there is one, to make the fix obvious.
            let below = catalog.nodes(onFile: node["file"]?.stringValue).first(where: isProtocol)?["node-name"]?.stringValue
            throw .notAProtocolNode(nodeName, driver: driver, protocolNode: below)
        }
        guard let filename = node["file"]?.stringValue, let capacity = node["image"]?["virtual-size"]?.unsignedValue else {
            throw .malformedReply("node '\(nodeName)' lacks file or image.virtual-size")
        }
        let formats = catalog.nodes(onFile: filename).filter { $0["node-name"]?.stringValue != nodeName && !isProtocol($0) }
        // The node directly on the volume comes last in QEMU's order (parents first).
        let format = formats.last
        return VolumeNodeInfo(
            nodeName: nodeName, driver: driver, filename: filename, capacity: capacity,
            formatDriver: format?["drv"]?.stringValue, formatVirtualSize: format?["image"]?["virtual-size"]?.unsignedValue,
            formatNodeNames: formats.compactMap { $0["node-name"]?.stringValue })
    }

    /// `wr_highest_offset` of `nodeName` in the reply of `query-blockstats` with
    /// `query-nodes: true`.
    public static func highestOffset(of nodeName: String, in reply: JSONValue) throws(VolumeNodeError) -> UInt64 {
        try number(of: nodeName, in: reply, at: ["stats", "wr_highest_offset"])
    }

    /// `highest-offset` of the one node in the reply of
    /// `__io.highwater_query-write-thresholds` with `node-name` (HighWater's per-node query:
    /// `query-blockstats` reports every node, which at hundreds of volumes costs more than
    /// the extension it precedes).
    public static func highestOffset(of nodeName: String, inWriteThresholds reply: JSONValue) throws(VolumeNodeError) -> UInt64 {
        try number(of: nodeName, in: reply, at: ["highest-offset"])
    }

    /// The number at `path` in the entry of `nodeName` in a reply that lists nodes.
    private static func number(of nodeName: String, in reply: JSONValue, at path: [String]) throws(VolumeNodeError) -> UInt64 {
        guard let entry = reply.arrayValue?.first(where: { $0["node-name"]?.stringValue == nodeName }) else {
            throw .unknownNode(nodeName, known: reply.arrayValue?.compactMap { $0["node-name"]?.stringValue } ?? [])
        }
        guard let number = path.reduce(Optional(entry), { $0?[$1] })?.unsignedValue else {
            throw .malformedReply("no \(path.joined(separator: ".")) for node '\(nodeName)'")
        }
        return number
    }

    /// The nodes of the exports that hold writes for lack of space, in the reply of
    /// `query-block-exports`: those whose `__io.highwater_io-status` is `nospace`
    /// (qemu-storage-daemon reports none).
    public static func nodesHoldingWrites(inExports reply: JSONValue) -> Set<String> {
        Set((reply.arrayValue ?? []).compactMap { export in
            export["__io.highwater_io-status"]?.stringValue == "nospace" ? export["node-name"]?.stringValue : nil
        })
    }
}
