import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 server for Prometheus: `GET /metrics` answers the text exposition
/// format, anything else 404.
public enum MetricsServer {
    /// Binds `address` and serves until the returned channel is closed.
    public static func start(
        at address: MetricsAddress, group: any EventLoopGroup, metrics: AutoExtendMetrics
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics))
                    }
                }
            }
            .bind(host: address.host, port: address.port).get()
    }
}
