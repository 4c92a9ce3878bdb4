import JSON

/// One asynchronous QMP event.
public struct QMPEvent: Sendable, Equatable {
    public var name: String
    public var data: JSONObject

    public init(name: String, data: JSONObject) {
        self.name = name
        self.data = data
    }
}
