import QMPClient

/// One daemon to watch: its monitor's address, and its name in records.
public struct WatchTarget: Sendable, Hashable, CustomStringConvertible {
    /// The command-line argument, as records name the daemon.
    public var name: String
    public var address: QMPAddress

    /// An address as ``QMPAddress`` reads it (`HOST:PORT`, `[::1]:4444`, `unix:PATH`, a
    /// path); anything else is taken as the path of a UNIX socket.
    public init(_ argument: String) {
        name = argument
        address = QMPAddress(argument) ?? .unix(path: argument)
    }

    public var description: String { name }
}
