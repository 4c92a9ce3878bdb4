import JSON
import Logging
import NIOCore
import QMP
import QMPCommands
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Every QMP connection of the daemon, so that events reach all monitors in command mode.
///
/// Events and replies reach a connection through its `MonitorOutput` in the order they were
/// produced: the events a command causes precede its reply, as in QEMU.
final class MonitorHub: QMPEventEmitter {
    private let connections = Mutex<[ObjectIdentifier: QMPMonitorHandler.Connection]>([:])
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func register(_ connection: QMPMonitorHandler.Connection) {
        connections.withLock { $0[ObjectIdentifier(connection)] = connection }
    }

    func unregister(_ connection: QMPMonitorHandler.Connection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    /// Sends an event to every monitor in command mode and logs it.
    ///
    /// Delivery comes first: a manager waiting for the event should not wait for our log.
    func emit(_ name: String, data: JSONObject?) {
        let timestamp = Self.wallClock()
        for connection in connections.withLock({ Array($0.values) }) {
            connection.deliverEvent(name: name, data: data, timestamp: timestamp)
        }
        if let data {
            logger.info("event \(name) \(String(decoding: JSONValue.object(data).serialized(), as: UTF8.self))")
        } else {
            logger.info("event \(name)")
        }
    }

    /// Closes every monitor connection (after pending writes).
    func closeAll() -> [EventLoopFuture<Void>] {
        connections.withLock { Array($0.values) }.map { $0.close() }
    }

    static func wallClock() -> (seconds: Int64, microseconds: Int64) {
        var tv = timeval()
        gettimeofday(&tv, nil)
        return (Int64(tv.tv_sec), Int64(tv.tv_usec))
    }
}
