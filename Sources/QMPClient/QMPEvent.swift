import JSON

/// One asynchronous QMP event.
public struct QMPEvent: Sendable, Equatable {
    public var name: String
    public var data: JSONObject
    /// When the daemon emitted it, if it said.
    public var timestamp: QMPTimestamp?

    public init(name: String, data: JSONObject, timestamp: QMPTimestamp? = nil) {
        self.name = name
        self.data = data
        self.timestamp = timestamp
    }
}
