import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A monitor's listening socket (`--chardev socket,server=on`). Its connections are accepted
/// here rather than by NIO because their descriptors must be known: `MonitorOutput` writes
/// events on them straight from the thread that produced them.
final class MonitorListener: Sendable {
    let address: ListenAddress
    private let descriptor: CInt
    /// Blocks in `accept` (monitor clients are few; no event loop needed).
    private let acceptor = NIOThreadPool(numberOfThreads: 1)

    /// Binds and listens at `address` (a stale UNIX socket file is replaced, as QEMU does);
    /// each accepted connection, a non-blocking close-on-exec socket, is handed to
    /// `onConnection`, which owns it from then on. Errors carry QEMU's texts.
    init(_ address: ListenAddress, onConnection: @escaping @Sendable (CInt) -> Void) throws {
        self.address = address
        descriptor = try Self.listen(at: address)
        let descriptor = self.descriptor
        acceptor.start()
        acceptor.submit { _ in Self.accept(on: descriptor, isInet: address.isInet, onConnection: onConnection) }
    }

    /// Stops accepting and closes the socket (a UNIX socket's file stays: see
    /// `removeSocketFile`).
    func close() async {
        // Wakes the blocked accept (EINVAL on Linux) so the acceptor's thread can end.
        shutdown(descriptor, Int32(SHUT_RDWR))
        try? await acceptor.shutdownGracefully()
        Glibc.close(descriptor)
    }

    func removeSocketFile() {
        if case .unix(let path) = address { unlink(path) }
    }

    private static func listen(at address: ListenAddress) throws -> CInt {
        let socketAddress: SocketAddress
        do {
            switch address {
            case .unix(let path):
                socketAddress = try SocketAddress(unixDomainSocketPath: path)
                removeStaleSocketFile(path)
            case .inet(let host, let port):
                socketAddress = try SocketAddress.makeAddressResolvingHost(host, port: port)
            }
        } catch {
            throw address.bindFailure("\(error)")
        }
        let family = socketAddress.protocol.rawValue
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure(address) }
        if address.isInet { setOption(SO_REUSEADDR, level: SOL_SOCKET, on: descriptor) }
        let bound = socketAddress.withSockAddr { bind(descriptor, $0, socklen_t($1)) }
        guard bound == 0, Glibc.listen(descriptor, 128) == 0 else {
            let error = failure(address)
            Glibc.close(descriptor)
            throw error
        }
        return descriptor
    }

    private static func accept(on listener: CInt, isInet: Bool, onConnection: @Sendable (CInt) -> Void) {
        while true {
            let connection = Glibc.accept(listener, nil, nil)
            if connection >= 0 {
                // The daemon starts no programs after startup: close-on-exec may come second.
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
                if isInet { setOption(TCP_NODELAY, level: Int32(IPPROTO_TCP), on: connection) }
                onConnection(connection)
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of resources: try again later rather than spin.
                usleep(100_000)
            default:
                return  // shut down
            }
        }
    }

    private static func setOption(_ option: Int32, level: Int32, on descriptor: CInt) {
        var one: CInt = 1
        setsockopt(descriptor, level, option, &one, socklen_t(MemoryLayout<CInt>.size))
    }

    private static func removeStaleSocketFile(_ path: String) {
        var status = stat()
        if lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }

    private static func failure(_ address: ListenAddress) -> DaemonStartupError {
        address.bindFailure(String(cString: strerror(errno)))
    }
}
