/// What a volume controller asks of its daemon (a QMP connection in production, a fake in
/// tests).
public protocol VolumeDaemonSession: Sendable {
    /// The node's size and file, read fresh (the daemon re-reads a device's size for this).
    func nodeInfo(_ nodeName: String) async throws -> VolumeNodeInfo
    /// `block-set-write-threshold`.
    func setWriteThreshold(_ nodeName: String, to threshold: UInt64) async throws
    /// `wr_highest_offset` of the node.
    func highestOffset(_ nodeName: String) async throws -> UInt64
    /// The nodes of the exports that hold writes for lack of space.
    func nodesHoldingWrites() async throws -> Set<String>
    /// Drops the connection, so the controller starts over with a fresh look at the nodes.
    func reconnect() async
}
