/// Why a configured node cannot be managed.
public enum VolumeNodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownNode(String, known: [String])
    case notAProtocolNode(String, driver: String, protocolNode: String?)
    case malformedReply(String)

    public var description: String {
        switch self {
        case .unknownNode(let name, let known):
            "no block node named '\(name)' (the daemon has: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .notAProtocolNode(let name, let driver, let protocolNode):
            "node '\(name)' is a \(driver) node, not a volume (host_device or file)"
                + (protocolNode.map { ": manage its file node '\($0)' instead" } ?? "")
        case .malformedReply(let what):
            "unexpected reply from the daemon: \(what)"
        }
    }
}
