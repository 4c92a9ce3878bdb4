import JSON
import Logging
import NIOCore
import Prometheus
import QMPClient

/// Keeps one daemon connected: connects (retrying with backoff), reads the managed nodes,
/// attaches their controllers, hands them the events, and on loss of the connection
/// detaches them and starts over. While connected it only waits for events: no polling.
public final class DaemonSupervisor<C: Clock>: Sendable where C.Duration == Duration, C.Instant: Sendable {
    public let address: QMPAddress
    public let volumes: [VolumeController<C>]
    private let group: any EventLoopGroup
    private let clock: C
    private let backoff: RetryBackoff
    private let connectedGauge: Gauge
    private let logger: Logger

    public init(
        address: QMPAddress, volumes: [VolumeController<C>], group: any EventLoopGroup, clock: C, backoff: RetryBackoff,
        metrics: AutoExtendMetrics, logger: Logger
    ) {
        self.address = address
        self.volumes = volumes
        self.group = group
        self.clock = clock
        self.backoff = backoff
        self.connectedGauge = metrics.connected(daemon: address)
        var logger = logger
        logger[metadataKey: "daemon"] = .string(address.description)
        self.logger = logger
    }

    /// Runs until cancelled. A configuration the first connection shows to be wrong (an
    /// unknown node, a format node instead of a volume, no maximum) ends it with an error;
    /// on later connections such a node is reported and left alone until the next one.
    public func run() async throws(ConfigurationError) {
        var failures = 0
        var firstConnection = true
        while !Task.isCancelled {
            let client: QMPClient
            do {
                client = try await QMPClient.connect(to: address, group: group)
            } catch {
                failures += 1
                let delay = backoff.delay(afterFailures: failures)
                logger.warning("cannot reach the daemon; retrying", metadata: ["error": .string("\(error)"), "delay-ms": .string(VolumeController<C>.milliseconds(delay))])
                guard (try? await clock.sleep(for: delay)) != nil else { return }
                continue
            }
            let connectedAt = clock.now
            logger.info("connected")
            connectedGauge.set(Int64(1))
            var routes: [String: [VolumeController<C>]] = [:]
            do {
                routes = try await attachVolumes(client, strict: firstConnection)
            } catch let error as ConfigurationError {
                await client.close()
                connectedGauge.set(Int64(0))
                throw error
            } catch {
                logger.warning("reading the block nodes failed", metadata: ["error": .string("\(error)")])
            }
            firstConnection = false
            // Events that arrived while attaching were buffered by the stream: none is lost.
            // Each goes to the volumes of the node it names, not to all of them.
            for await event in client.events {
                guard let nodeName = event.data["node-name"]?.stringValue else { continue }
                for volume in routes[nodeName] ?? [] {
                    await volume.handle(event)
                }
            }
            for volume in volumes {
                await volume.detach()
            }
            connectedGauge.set(Int64(0))
            // Cancelled (the stream ends with the task): a shutdown, not a lost connection.
            if Task.isCancelled {
                await client.close()
                logger.info("disconnected")
                return
            }
            // A connection that keeps dropping at once (a command failing every time) backs
            // off like one that cannot be made.
            if connectedAt.duration(to: clock.now) < .seconds(1) {
                failures += 1
                let delay = backoff.delay(afterFailures: failures)
                logger.warning("connection to the daemon lost; reconnecting", metadata: ["delay-ms": .string(VolumeController<C>.milliseconds(delay))])
                guard (try? await clock.sleep(for: delay)) != nil else { return }
            } else {
                failures = 0
                logger.warning("connection to the daemon lost; reconnecting")
            }
        }
    }

    /// Attaches every volume the daemon has; returns the volumes by the names of the nodes
    /// whose events concern them (the volume's node and the format nodes on it).
    private func attachVolumes(_ client: QMPClient, strict: Bool) async throws -> [String: [VolumeController<C>]] {
        let session = try await QMPDaemonSession.negotiate(client)
        let nodes = VolumeNodeInfo.Catalog(try await session.namedBlockNodes())
        // Read after the event stream started: a stall from now on is also an event.
        let holding: Set<String>
        do {
            holding = try await session.nodesHoldingWrites()
        } catch {
            logger.warning("cannot tell which exports hold writes", metadata: ["error": .string("\(error)")])
            holding = []
        }
        var routes: [String: [VolumeController<C>]] = [:]
        for volume in volumes {
            do {
                let info = try VolumeNodeInfo.find(volume.configuration.nodeName, in: nodes)
                let names = info.eventNodeNames
                try await volume.attach(session, node: info, writesHeld: names.contains(where: holding.contains))
                for name in names { routes[name, default: []].append(volume) }
            } catch let error as VolumeNodeError {
                guard !strict else { throw ConfigurationError("\(address): \(error)") }
                logger.error("volume not managed on this connection", metadata: ["error": .string("\(error)")])
            }
        }
        return routes
    }
}
