import JSON

/// The settings of the NBD server: `--nbd-server` (QAPI `NbdServerOptions`, flat address)
/// and QMP `nbd-server-start` (legacy address with a `data` wrapper). Same members, in this
/// order, for both.
public struct NBDServerOptions: Sendable, Equatable {
    public var address: SocketAddress
    /// Id of a TLS credentials object.
    public var tlsCreds: String?
    /// Id of a QAuthZ object checking the client's x509 name.
    public var tlsAuthz: String?
    /// The most clients served at once; 0 means no limit (QEMU 7.2's default).
    public var maxConnections: UInt32

    public init(address: SocketAddress, tlsCreds: String? = nil, tlsAuthz: String? = nil, maxConnections: UInt32 = 0) {
        self.address = address
        self.tlsCreds = tlsCreds
        self.tlsAuthz = tlsAuthz
        self.maxConnections = maxConnections
    }

    /// Decodes `--nbd-server` (keyval without implied key, or the JSON form).
    public static func decodeCommandLine(_ object: JSONObject, mode: QAPIInputMode) throws(QAPIError) -> NBDServerOptions {
        try QAPIObjectReader.read(object, mode: mode) { (members) throws(QAPIError) in
            try NBDServerOptions(address: members.required("addr", as: SocketAddress.self), rest: &members)
        }
    }

    /// Decodes the arguments of QMP `nbd-server-start`.
    public static func decodeNBDServerStart(_ arguments: JSONObject) throws(QAPIError) -> NBDServerOptions {
        try QAPIObjectReader.read(arguments, mode: .json) { (members) throws(QAPIError) in
            try NBDServerOptions(address: members.required("addr", as: SocketAddress.Legacy.self).address, rest: &members)
        }
    }

    private init(address: SocketAddress, rest members: inout QAPIObjectReader) throws(QAPIError) {
        self.address = address
        tlsCreds = try members.optional("tls-creds")
        tlsAuthz = try members.optional("tls-authz")
        maxConnections = try members.optional("max-connections", default: 0)
    }
}
