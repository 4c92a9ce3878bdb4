import NIOCore
import NIOPosix
import QAPI

#if canImport(Glibc)
import Glibc
#endif

/// Where a listener binds: a UNIX socket path or a TCP host and port.
enum ListenAddress: Sendable, CustomStringConvertible {
    case unix(path: String)
    case inet(host: String, port: Int)

    /// The listening address a QAPI `SocketAddress` names.
    init(_ address: QAPI.SocketAddress) throws {
        switch address {
        case .unix(let unix):
            self = .unix(path: unix.path)
        case .inet(let inet):
            guard let port = Int(inet.port), (0...65535).contains(port) else {
                throw DaemonStartupError("address resolution failed for \(inet.host):\(inet.port): Servname not supported for ai_socktype")
            }
            self = .inet(host: inet.host, port: port)
        case .vsock, .fd:
            throw DaemonStartupError("HighWater listens on unix and inet sockets only")
        }
    }

    var description: String {
        switch self {
        case .unix(let path): path
        case .inet(let host, let port): "\(host):\(port)"
        }
    }

    var isInet: Bool {
        if case .inet = self { true } else { false }
    }

    /// QEMU's error for a listener that cannot be set up here.
    func bindFailure(_ reason: String) -> DaemonStartupError {
        DaemonStartupError("Failed to bind socket to \(self): \(reason)")
    }
}

/// The NBD server's listening socket (monitors have their own, `MonitorListener`). A stale
/// UNIX socket file is replaced, as QEMU does; errors carry QEMU's texts.
enum SocketListener {
    static func bind(
        _ address: ListenAddress, group: any EventLoopGroup,
        childInitializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) throws -> any Channel {
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer(childInitializer)
        if address.isInet {
            bootstrap = bootstrap
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        }
        do {
            switch address {
            case .unix(let path):
                return try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
            case .inet(let host, let port):
                return try bootstrap.bind(host: host, port: port).wait()
            }
        } catch let error as IOError {
            throw address.bindFailure(String(cString: strerror(error.errnoCode)))
        } catch {
            throw address.bindFailure("\(error)")
        }
    }
}
