import JSON
import QMPClient

/// `VolumeDaemonSession` over a QMP client.
public struct QMPDaemonSession: VolumeDaemonSession {
    public let client: QMPClient
    /// The daemon has HighWater's per-node `__io.highwater_query-write-thresholds`: the
    /// highest offset of one node is read with it instead of `query-blockstats` (all nodes).
    public let hasPerNodeQueries: Bool

    public init(client: QMPClient, hasPerNodeQueries: Bool = false) {
        self.client = client
        self.hasPerNodeQueries = hasPerNodeQueries
    }

    /// A session on `client`, asking the daemon which of the queries it has.
    public static func negotiate(_ client: QMPClient) async throws -> QMPDaemonSession {
        let commands = try await client.execute("query-commands")
        let names = Set((commands.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
        return QMPDaemonSession(client: client, hasPerNodeQueries: names.contains("__io.highwater_query-write-thresholds"))
    }

    public func nodeInfo(_ nodeName: String) async throws -> VolumeNodeInfo {
        try VolumeNodeInfo.find(nodeName, in: try await namedBlockNodes())
    }

    public func namedBlockNodes() async throws -> JSONValue {
        try await client.execute("query-named-block-nodes", arguments: ["flat": true])
    }

    /// The nodes of the exports holding writes for lack of space (see
    /// `VolumeNodeInfo.nodesHoldingWrites(inExports:)`).
    public func nodesHoldingWrites() async throws -> Set<String> {
        VolumeNodeInfo.nodesHoldingWrites(inExports: try await client.execute("query-block-exports"))
    }

    public func setWriteThreshold(_ nodeName: String, to threshold: UInt64) async throws {
        _ = try await client.execute(
            "block-set-write-threshold", arguments: ["node-name": .string(nodeName), "write-threshold": .unsigned(threshold)])
    }

    public func highestOffset(_ nodeName: String) async throws -> UInt64 {
        if hasPerNodeQueries {
            let reply = try await client.execute("__io.highwater_query-write-thresholds", arguments: ["node-name": .string(nodeName)])
            return try VolumeNodeInfo.highestOffset(of: nodeName, inWriteThresholds: reply)
        }
        let stats = try await client.execute("query-blockstats", arguments: ["query-nodes": true])
        return try VolumeNodeInfo.highestOffset(of: nodeName, in: stats)
    }

    public func reconnect() async {
        await client.close()
    }
}
