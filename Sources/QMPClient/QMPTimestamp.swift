import JSON

/// A wall-clock time as QMP gives it: seconds and microseconds since the epoch.
public struct QMPTimestamp: Sendable, Equatable {
    public var seconds: Int64
    public var microseconds: Int64

    public init(seconds: Int64, microseconds: Int64) {
        self.seconds = seconds
        self.microseconds = microseconds
    }

    /// Reads an event's `timestamp` member.
    public init?(_ value: JSONValue?) {
        guard case .int(let seconds)? = value?["seconds"], case .int(let microseconds)? = value?["microseconds"] else { return nil }
        self.init(seconds: seconds, microseconds: microseconds)
    }
}
