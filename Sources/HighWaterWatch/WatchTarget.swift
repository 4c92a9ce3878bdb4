/// One daemon to watch: where its QMP monitor listens.
public enum WatchTarget: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// `HOST:PORT` (`[::1]:4444` for IPv6) is a TCP address; anything else, and anything
    /// with a `/`, is the path of a UNIX socket.
    public init(_ argument: String) {
        if !argument.contains("/"), let colon = argument.lastIndex(of: ":"),
           let port = Int(argument[argument.index(after: colon)...]), (1...65535).contains(port) {
            var host = String(argument[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if !host.isEmpty {
                self = .tcp(host: host, port: port)
                return
            }
        }
        self = .unix(path: argument)
    }

    /// How records name the daemon: what was given on the command line.
    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
