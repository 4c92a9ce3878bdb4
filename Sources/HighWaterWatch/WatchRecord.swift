import JSON
import QMPClient

#if canImport(Glibc)
import Glibc
#endif

/// One thing `highwater watch` reports: a line of output.
public struct WatchRecord: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The monitor greeted and accepted the capabilities negotiation.
        case connected(version: String, package: String)
        /// A QMP event, with the daemon's timestamp.
        case event(name: String, data: JSONObject)
        /// A node's use changed (or was seen for the first time).
        case use(NodeUse)
        /// A node seen before is gone.
        case nodeRemoved(String)
        /// The connection ended or could not be made; the next attempt is `retryMilliseconds` away.
        case disconnected(reason: String, retryMilliseconds: Int64)
    }

    public var timestamp: QMPTimestamp
    /// The daemon, as given on the command line.
    public var daemon: String
    public var kind: Kind

    public init(timestamp: QMPTimestamp, daemon: String, kind: Kind) {
        self.timestamp = timestamp
        self.daemon = daemon
        self.kind = kind
    }
}

extension QMPTimestamp {
    /// The wall clock now.
    public static var now: QMPTimestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return QMPTimestamp(seconds: Int64(time.tv_sec), microseconds: Int64(time.tv_nsec / 1000))
    }
}
