/// Where a named write threshold lies.
public enum WriteThresholdLevel: Sendable, Hashable {
    /// A fixed offset in bytes.
    case bytes(UInt64)
    /// A percentage (1–100) of the node's size, recomputed whenever the node is resized.
    case percent(UInt8)

    /// The offset this level stands for on a node of `size` bytes (rounded down, exact).
    public func value(forSize size: UInt64) -> UInt64 {
        switch self {
        case .bytes(let bytes): bytes
        // size * p / 100 without overflowing 64 bits.
        case .percent(let percent): size / 100 * UInt64(percent) + size % 100 * UInt64(percent) / 100
        }
    }

    /// The percentage, nil for a byte level.
    public var percent: UInt8? {
        if case .percent(let percent) = self { percent } else { nil }
    }
}

/// What a named threshold does once it fired.
public enum WriteThresholdMode: String, Sendable, Hashable, CaseIterable {
    /// Disarms until set again (QEMU's behaviour).
    case oneShot = "one-shot"
    /// Waits for the node to be resized, then arms itself again at its (recomputed) value.
    case reArm = "re-arm"
}

/// How a named threshold was asked for.
public struct WriteThresholdSettings: Sendable, Hashable {
    public var level: WriteThresholdLevel
    public var mode: WriteThresholdMode
    /// Fire at once when the node's highest written offset is already past the value each
    /// time the threshold is armed (set, or re-armed by a resize) or recomputed.
    public var fireIfPast: Bool

    public init(level: WriteThresholdLevel, mode: WriteThresholdMode = .oneShot, fireIfPast: Bool = false) {
        self.level = level
        self.mode = mode
        self.fireIfPast = fireIfPast
    }
}

/// One named threshold of a node as it stands.
public struct NamedWriteThreshold: Sendable, Equatable {
    public let name: String
    public let settings: WriteThresholdSettings
    /// The level in bytes for the node's size.
    public fileprivate(set) var value: UInt64
    /// Whether the next write-type request ending past `value` fires it.
    public fileprivate(set) var isArmed: Bool
    /// How often it fired since it was set.
    public fileprivate(set) var fireCount: UInt64
}

/// What made a named threshold fire.
public enum WriteThresholdCause: String, Sendable, Hashable {
    /// A write-type request ended past the value.
    case write
    /// It was set (`fire-if-past`) below the highest written offset.
    case set
    /// The node was resized (`fire-if-past`) and the highest written offset is past the new value.
    case resize
}

/// A named threshold fired: the payload of ``BlockEvent/namedWriteThresholdExceeded(_:)``.
public struct WriteThresholdCrossing: Sendable, Equatable {
    public var nodeName: String
    public var name: String
    /// The value that was passed, in bytes.
    public var threshold: UInt64
    /// How far past the value: the request's end, or the highest written offset when the
    /// cause is not a write, minus the value.
    public var amountExceeded: UInt64
    public var settings: WriteThresholdSettings
    public var cause: WriteThresholdCause
    /// The node's size when it fired.
    public var nodeSize: UInt64
    /// The node's highest written offset when it fired (including the crossing request).
    public var highestOffset: UInt64

    public init(nodeName: String, name: String, threshold: UInt64, amountExceeded: UInt64, settings: WriteThresholdSettings,
                cause: WriteThresholdCause, nodeSize: UInt64, highestOffset: UInt64) {
        self.nodeName = nodeName
        self.name = name
        self.threshold = threshold
        self.amountExceeded = amountExceeded
        self.settings = settings
        self.cause = cause
        self.nodeSize = nodeSize
        self.highestOffset = highestOffset
    }
}

/// The named thresholds of one node, as a pure state machine: every input returns the
/// thresholds that fired. The node serialises the inputs and turns firings into events.
///
/// Rules:
/// - Armed thresholds fire when a write-type request ends past their value; firing disarms.
/// - A one-shot threshold stays disarmed until it is set again.
/// - A re-arming threshold is armed again by the next resize of the node (with its value
///   recomputed for a percentage), so a manager that grows a volume hears again once the
///   writes reach the same share of the grown volume.
/// - `fireIfPast` fires at once, whenever a threshold is armed or recomputed, if the highest
///   written offset is already past its value (otherwise the next write past it fires it).
/// - One-shot thresholds that are disarmed keep following the size, for reporting.
struct NamedWriteThresholds: Sendable {
    /// One threshold that fired, without the node's context.
    struct Firing: Equatable {
        var threshold: NamedWriteThreshold
        var amountExceeded: UInt64
        var cause: WriteThresholdCause
    }

    /// In the order they were first set.
    private(set) var thresholds: [NamedWriteThreshold] = []
    /// The lowest armed value, `UInt64.max` when none is armed: requests ending at or below
    /// it cannot fire anything.
    private(set) var lowestArmedValue = UInt64.max

    var isEmpty: Bool { thresholds.isEmpty }

    /// Sets (or replaces, keeping its place) the threshold `name`, armed.
    mutating func set(_ name: String, _ settings: WriteThresholdSettings, size: UInt64, highestOffset: UInt64) -> Firing? {
        var threshold = NamedWriteThreshold(name: name, settings: settings, value: settings.level.value(forSize: size),
                                            isArmed: true, fireCount: 0)
        let firing = Self.fireIfPast(&threshold, highestOffset: highestOffset, cause: .set)
        if let index = thresholds.firstIndex(where: { $0.name == name }) {
            thresholds[index] = threshold
        } else {
            thresholds.append(threshold)
        }
        updateLowestArmedValue()
        return firing
    }

    /// Removes the threshold `name`; false when there is none.
    mutating func clear(_ name: String) -> Bool {
        guard let index = thresholds.firstIndex(where: { $0.name == name }) else { return false }
        thresholds.remove(at: index)
        updateLowestArmedValue()
        return true
    }

    /// A write-type request ending at `end` is about to be issued.
    mutating func requestEnds(at end: UInt64) -> [Firing] {
        guard end > lowestArmedValue else { return [] }
        var firings: [Firing] = []
        for index in thresholds.indices where thresholds[index].isArmed && end > thresholds[index].value {
            firings.append(Self.fire(&thresholds[index], amountExceeded: end - thresholds[index].value, cause: .write))
        }
        updateLowestArmedValue()
        return firings
    }

    /// The node now has `size` bytes.
    mutating func resized(to size: UInt64, highestOffset: UInt64) -> [Firing] {
        var firings: [Firing] = []
        for index in thresholds.indices {
            thresholds[index].value = thresholds[index].settings.level.value(forSize: size)
            if thresholds[index].settings.mode == .reArm { thresholds[index].isArmed = true }
            guard thresholds[index].isArmed else { continue }
            if let firing = Self.fireIfPast(&thresholds[index], highestOffset: highestOffset, cause: .resize) {
                firings.append(firing)
            }
        }
        updateLowestArmedValue()
        return firings
    }

    private static func fireIfPast(_ threshold: inout NamedWriteThreshold, highestOffset: UInt64, cause: WriteThresholdCause) -> Firing? {
        guard threshold.settings.fireIfPast, highestOffset > threshold.value else { return nil }
        return fire(&threshold, amountExceeded: highestOffset - threshold.value, cause: cause)
    }

    private static func fire(_ threshold: inout NamedWriteThreshold, amountExceeded: UInt64, cause: WriteThresholdCause) -> Firing {
        threshold.isArmed = false
        threshold.fireCount += 1
        return Firing(threshold: threshold, amountExceeded: amountExceeded, cause: cause)
    }

    private mutating func updateLowestArmedValue() {
        lowestArmedValue = thresholds.lazy.filter(\.isArmed).map(\.value).min() ?? .max
    }
}
