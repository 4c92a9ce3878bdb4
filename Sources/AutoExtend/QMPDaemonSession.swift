import JSON
import QMPClient

/// `VolumeDaemonSession` over a QMP client.
public struct QMPDaemonSession: VolumeDaemonSession {
    public let client: QMPClient

    public init(client: QMPClient) {
        self.client = client
    }

    public func nodeInfo(_ nodeName: String) async throws -> VolumeNodeInfo {
        try VolumeNodeInfo.find(nodeName, in: try await namedBlockNodes())
    }

    public func namedBlockNodes() async throws -> JSONValue {
        try await client.execute("query-named-block-nodes", arguments: ["flat": true])
    }

    public func setWriteThreshold(_ nodeName: String, to threshold: UInt64) async throws {
        _ = try await client.execute(
            "block-set-write-threshold", arguments: ["node-name": .string(nodeName), "write-threshold": .unsigned(threshold)])
    }

    public func highestOffset(_ nodeName: String) async throws -> UInt64 {
        let stats = try await client.execute("query-blockstats", arguments: ["query-nodes": true])
        return try VolumeNodeInfo.highestOffset(of: nodeName, in: stats)
    }

    public func reconnect() async {
        await client.close()
    }
}
