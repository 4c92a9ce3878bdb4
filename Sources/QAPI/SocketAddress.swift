/// QAPI `SocketAddress`: where a server listens (or a client connects).
///
/// Decoding it as a ``QAPIStruct`` reads the flat form used by `--nbd-server addr.type=unix,
/// addr.path=…` and `block-export-add`'s vhost-user-blk `addr`; ``Legacy`` reads the
/// `{"type": "unix", "data": {"path": …}}` form of QMP `nbd-server-start`.
public enum SocketAddress: QAPIStruct, Sendable, Equatable {
    case inet(InetSocketAddress)
    case unix(UnixSocketAddress)
    case vsock(VsockSocketAddress)
    /// A file descriptor number or the name of a monitor-passed descriptor.
    case fd(String)

    /// QAPI `SocketAddressType`.
    public enum Kind: String, QAPIEnum, Sendable {
        case inet, unix, vsock, fd
    }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        let kind = try members.required("type", as: Kind.self)
        self = try Self(kind: kind, variantMembers: &members)
    }

    /// Reads the members of the `kind` branch.
    private init(kind: Kind, variantMembers members: inout QAPIObjectReader) throws(QAPIError) {
        switch kind {
        case .inet: self = .inet(try InetSocketAddress(members: &members))
        case .unix: self = .unix(try UnixSocketAddress(members: &members))
        case .vsock: self = .vsock(try VsockSocketAddress(members: &members))
        case .fd: self = .fd(try members.required("str"))
        }
    }

    /// QAPI `SocketAddressLegacy`: the branch members are wrapped in a `data` object.
    public struct Legacy: QAPIStruct, Sendable, Equatable {
        public var address: SocketAddress

        public init(address: SocketAddress) { self.address = address }

        public init(members: inout QAPIObjectReader) throws(QAPIError) {
            let kind = try members.required("type", as: Kind.self)
            var data = try members.input("data").object()
            address = try SocketAddress(kind: kind, variantMembers: &data)
            try data.finish()
        }
    }
}

/// QAPI `InetSocketAddress`.
public struct InetSocketAddress: QAPIStruct, Sendable, Equatable {
    public var host: String
    /// A port number or service name.
    public var port: String
    public var numeric: Bool?
    /// The highest port to try when `port` is busy.
    public var to: UInt16?
    public var ipv4: Bool?
    public var ipv6: Bool?
    public var keepAlive: Bool?
    public var mptcp: Bool?

    public init(host: String, port: String) {
        self.host = host
        self.port = port
    }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        host = try members.required("host")
        port = try members.required("port")
        numeric = try members.optional("numeric")
        to = try members.optional("to")
        ipv4 = try members.optional("ipv4")
        ipv6 = try members.optional("ipv6")
        keepAlive = try members.optional("keep-alive")
        mptcp = try members.optional("mptcp")
    }
}

/// QAPI `UnixSocketAddress`.
public struct UnixSocketAddress: QAPIStruct, Sendable, Equatable {
    public var path: String
    public var abstract: Bool?
    public var tight: Bool?

    public init(path: String) { self.path = path }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        path = try members.required("path")
        abstract = try members.optional("abstract")
        tight = try members.optional("tight")
    }
}

/// QAPI `VsockSocketAddress`.
public struct VsockSocketAddress: QAPIStruct, Sendable, Equatable {
    public var cid: String
    public var port: String

    public init(cid: String, port: String) {
        self.cid = cid
        self.port = port
    }

    public init(members: inout QAPIObjectReader) throws(QAPIError) {
        cid = try members.required("cid")
        port = try members.required("port")
    }
}
