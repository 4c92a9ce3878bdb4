/// Where a daemon's QMP monitor listens: a UNIX socket path or a TCP host and port.
public enum QMPAddress: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// Reads `unix:PATH`, `tcp:HOST:PORT`, `HOST:PORT` (a port after the last colon, no
    /// slash), or a plain path.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { return nil }
            self = .unix(path: path)
            return
        }
        let explicitTCP = text.hasPrefix("tcp:")
        let rest = explicitTCP ? String(text.dropFirst(4)) : text
        if let colon = rest.lastIndex(of: ":"), !rest.contains("/") {
            var host = String(rest[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port), !host.isEmpty else {
                return nil
            }
            self = .tcp(host: host, port: port)
            return
        }
        guard !explicitTCP, !text.isEmpty else { return nil }
        self = .unix(path: text)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        }
    }
}
