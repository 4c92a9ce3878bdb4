import BlockCore
import JSON

/// Turns the block layer's events into QMP events.
public struct QMPBlockEventSink: BlockEventSink {
    let events: any QMPEventEmitter

    /// The event of HighWater's named write thresholds.
    static let namedThresholdEvent = "__io.highwater_WRITE_THRESHOLD"

    public init(events: any QMPEventEmitter) {
        self.events = events
    }

    public func blockEvent(_ event: BlockEvent) {
        switch event {
        case .writeThresholdExceeded(let nodeName, let amountExceeded, let threshold):
            events.emit("BLOCK_WRITE_THRESHOLD", data: [
                "node-name": .string(nodeName),
                "amount-exceeded": .unsigned(amountExceeded),
                "write-threshold": .unsigned(threshold),
            ])
        case .namedWriteThresholdExceeded(let crossing):
            events.emit(Self.namedThresholdEvent, data: WriteThresholdReport.event(crossing))
        }
    }

    /// `BLOCK_IO_ERROR` for a write an export holds for lack of space (HighWater's NBD
    /// `__io.highwater_on-enospc=hold`): QEMU's event for a guest stopped on ENOSPC
    /// (`werror=enospc`), with its members in its order. There is no device, only the node.
    public func writeStalledOnNoSpace(nodeName: String) {
        events.emit("BLOCK_IO_ERROR", data: [
            "device": "",
            "node-name": .string(nodeName),
            "operation": "write",
            "action": "stop",
            "nospace": true,
            "reason": .string(BlockError.noSpace.description),
        ])
    }
}
