/// Why a QMP exchange with a daemon failed.
public enum QMPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection could not be made.
    case connectFailed(address: QMPAddress, reason: String)
    /// The connection closed (or was closed) before the reply came.
    case connectionClosed
    /// The daemon answered with a QMP error.
    case commandFailed(command: String, errorClass: String, description: String)
    /// The daemon sent something that is not QMP.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .connectFailed(let address, let reason): "cannot connect to \(address): \(reason)"
        case .connectionClosed: "connection to the daemon closed"
        case .commandFailed(let command, let errorClass, let description): "\(command) failed: \(errorClass): \(description)"
        case .protocolViolation(let what): "QMP protocol violation: \(what)"
        }
    }
}
