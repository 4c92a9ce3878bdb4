import Prometheus
import QMPClient

/// The controller's Prometheus metrics (all prefixed `highwater_autoextend_`).
public final class AutoExtendMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The text exposition format, as served on `/metrics`.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }

    /// Whether the controller is connected to the daemon at `address` (1) or not (0).
    public func connected(daemon address: QMPAddress) -> Gauge {
        registry.makeGauge(
            descriptor: Self.name("daemon_connected", unit: "", help: "1 while connected to the daemon's QMP monitor"),
            labels: [("daemon", address.description)])
    }

    /// The metrics of one volume.
    public func volume(_ nodeName: String) -> VolumeMetrics {
        VolumeMetrics(registry: registry, nodeName: nodeName)
    }

    static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "highwater", subsystem: "autoextend", metricName: metric, unitName: unit, helpText: help)
    }
}

/// One volume's counters, gauges and extension latency histogram.
public struct VolumeMetrics: Sendable {
    /// `BLOCK_WRITE_THRESHOLD` events and thresholds found already passed when arming.
    public let thresholdEvents: Counter
    /// `BLOCK_IO_ERROR` events with `nospace`: each is a write held (or failed) for lack of space.
    public let noSpaceEvents: Counter
    /// Events that arrived while an extension was in flight or waiting to be retried.
    public let coalescedEvents: Counter
    public let extensions: Counter
    public let failedExtensions: Counter
    /// From the decision to extend to the daemon seeing the new size.
    public let extensionLatency: DurationHistogram
    public let capacity: Gauge
    public let maximum: Gauge
    public let threshold: Gauge
    public let highestOffset: Gauge
    public let atMaximum: Gauge

    init(registry: PrometheusCollectorRegistry, nodeName: String) {
        let labels = [("node", nodeName)]
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: AutoExtendMetrics.name(name, unit: "total", help: help), labels: labels)
        }
        func gauge(_ name: String, unit: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: AutoExtendMetrics.name(name, unit: unit, help: help), labels: labels)
        }
        thresholdEvents = counter("threshold_events", "Write threshold crossings (events, or found when arming)")
        noSpaceEvents = counter("nospace_events", "Writes that found no space (BLOCK_IO_ERROR nospace): held or failed requests")
        coalescedEvents = counter("coalesced_events", "Events merged into an extension already in flight")
        extensions = counter("extensions", "Successful extensions")
        failedExtensions = counter("failed_extensions", "Failed extension attempts (retried with backoff)")
        extensionLatency = registry.makeDurationHistogram(
            descriptor: AutoExtendMetrics.name("extension_duration", unit: "seconds", help: "Time from the decision to extend until the daemon sees the new size"),
            labels: labels,
            buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                      .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)])
        capacity = gauge("volume_capacity", unit: "bytes", "The volume's size as the daemon sees it")
        maximum = gauge("volume_maximum", unit: "bytes", "The size the volume is never grown past")
        threshold = gauge("volume_threshold", unit: "bytes", "The write threshold armed last (0: none)")
        highestOffset = gauge("volume_highest_offset", unit: "bytes", "wr_highest_offset read last: the volume's use")
        atMaximum = gauge("volume_at_maximum", unit: "", "1 when the volume has reached its maximum size")
    }
}
