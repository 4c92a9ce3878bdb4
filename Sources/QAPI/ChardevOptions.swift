/// A character device from `--chardev` (QemuOpts syntax, first item = backend), e.g.
/// `socket,id=qmp0,path=/run/qsd/qmp.sock,server=on,wait=off`.
///
/// Only what a storage daemon's monitors need is typed (``Backend/socket(_:)`` and
/// ``Backend/stdio(signal:)``); the other backends QEMU knows are recognised by name
/// (``Backend/other(_:)``) so the caller can reject them. Options that only matter to
/// untyped backends (`logfile`, `mux`, …) are checked for syntax and otherwise ignored.
public struct ChardevOptions: Sendable, Equatable {
    public enum Backend: Sendable, Equatable {
        case socket(SocketChardevOptions)
        /// Standard input/output; `signal` lets Ctrl-C reach the process (default on).
        case stdio(signal: Bool)
        /// A valid backend without typed options (`null`, `file`, `pty`, …).
        case other(String)
    }

    public var id: String
    public var backend: Backend

    public init(id: String, backend: Backend) {
        self.id = id
        self.backend = backend
    }

    public enum ParseResult: Sendable, Equatable {
        case chardev(ChardevOptions)
        /// `--chardev help`: print ``ChardevOptions/backendListText`` on stdout, exit 0.
        case listBackends
        /// A bare `help` among the options: print ``ChardevOptions/optionListText`` on
        /// stdout, exit 1.
        case listOptions
    }

    /// Parses a `--chardev` argument with QEMU's checks, in QEMU's order. Warnings
    /// (deprecated short booleans and backend aliases) are reported as they are found.
    public static func parse(_ text: String, reportWarning: (QAPIWarning) -> Void) throws(QAPIError) -> ParseResult {
        guard case .options(let options) = try parser.parse(text, reportWarning: reportWarning) else {
            return .listOptions
        }
        let backendName = options.string("backend")
        if let backendName, backendName == "help" || backendName == "?" { return .listBackends }
        guard let id = options.id else { throw QAPIError("chardev: no id specified") }
        guard var backendName else { throw QAPIError("chardev: \"\(id)\" missing backend") }
        if let canonical = deprecatedAliases[backendName] {
            reportWarning(QAPIWarning("The alias '\(backendName)' is deprecated, use '\(canonical)' instead"))
            backendName = canonical
        }
        guard backendNames.contains(backendName) else {
            throw QAPIError("'\(backendName)' is not a valid char driver name")
        }
        switch backendName {
        case "socket": return .chardev(ChardevOptions(id: id, backend: .socket(try SocketChardevOptions(options))))
        case "stdio": return .chardev(ChardevOptions(id: id, backend: .stdio(signal: options.bool("signal") ?? true)))
        default: return .chardev(ChardevOptions(id: id, backend: .other(backendName)))
        }
    }

    /// The backends of QEMU 7.2's storage daemon, in `--chardev help` order.
    public static let backendNames = ["pty", "udp", "memory", "file", "socket", "stdio", "ringbuf", "null", "parallel",
                                      "pipe", "mux", "serial"]

    static let deprecatedAliases = ["parport": "parallel", "tty": "serial"]

    /// What `--chardev help` prints.
    public static var backendListText: String {
        "Available chardev backend types: \n" + backendNames.map { "  \($0)\n" }.joined()
    }

    /// What a `help` item among chardev options prints.
    public static var optionListText: String { parser.helpText }

    /// QEMU's chardev option table (`qemu_chardev_opts`).
    static let parser = QemuOptsParser(groupName: "chardev", impliedName: "backend", options: [
        "abstract": .bool, "append": .bool, "backend": .string, "chardev": .string, "clipboard": .bool,
        "cols": .number, "debug": .number, "delay": .bool, "fd": .string, "height": .number, "host": .string,
        "ipv4": .bool, "ipv6": .bool, "localaddr": .string, "localport": .string, "logappend": .bool,
        "logfile": .string, "mouse": .bool, "mux": .bool, "name": .string, "nodelay": .bool, "path": .string,
        "port": .string, "reconnect": .number, "rows": .number, "server": .bool, "signal": .bool, "size": .size,
        "telnet": .bool, "tight": .bool, "tls-authz": .string, "tls-creds": .string, "tn3270": .bool, "to": .number,
        "wait": .bool, "websocket": .bool, "width": .number,
    ])
}

/// The typed options of a `socket` chardev.
public struct SocketChardevOptions: Sendable, Equatable {
    /// `path=` (UNIX), `host=`+`port=` (TCP) or `fd=`. QEMU accepts none of them too, as an
    /// empty `fd` that fails when used (`Unable to parse FD number `).
    public var address: SocketAddress
    /// Listen (`server=on`) rather than connect.
    public var server: Bool
    /// In server mode, block startup until the first client connects (default on).
    public var wait: Bool
    /// In client mode, seconds between reconnection attempts.
    public var reconnect: UInt64?

    public init(address: SocketAddress, server: Bool, wait: Bool = true, reconnect: UInt64? = nil) {
        self.address = address
        self.server = server
        self.wait = wait
        self.reconnect = reconnect
    }

    init(_ options: QemuOptsParser.Options) throws(QAPIError) {
        let path = options.string("path")
        let host = options.string("host")
        let fd = options.string("fd")
        guard [path, host, fd].compactMap({ $0 }).count <= 1 else {
            throw QAPIError("None or one of 'path', 'fd' or 'host' option required.")
        }
        if host != nil, options.string("port") == nil { throw QAPIError("chardev: socket: no port given") }
        if options.contains("delay"), options.contains("nodelay") {
            throw QAPIError("'delay' and 'nodelay' are mutually exclusive")
        }
        if let path {
            var unix = UnixSocketAddress(path: path)
            unix.abstract = options.bool("abstract")
            unix.tight = options.bool("tight")
            address = .unix(unix)
        } else if let host {
            var inet = InetSocketAddress(host: host, port: options.string("port")!)
            inet.ipv4 = options.bool("ipv4")
            inet.ipv6 = options.bool("ipv6")
            inet.to = options.number("to").map { UInt16(truncatingIfNeeded: $0) }
            address = .inet(inet)
        } else {
            address = .fd(fd ?? "")
        }
        server = options.bool("server") ?? false
        wait = options.bool("wait") ?? true
        reconnect = options.number("reconnect")
        // QEMU checks these when opening the socket, before connecting or listening.
        if !server, options.contains("wait") {
            throw QAPIError("'wait' option is incompatible with socket in client connect mode")
        }
        if server, reconnect != nil {
            throw QAPIError("'reconnect' option is incompatible with socket in server listen mode")
        }
    }
}
