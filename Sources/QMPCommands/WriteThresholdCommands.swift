import BlockCore
import JSON
import QAPI

/// HighWater's named write thresholds: `__io.highwater_set-write-threshold`,
/// `__io.highwater_clear-write-threshold`, `__io.highwater_query-write-thresholds`. They live
/// beside the classic `block-set-write-threshold`, which they never touch.
extension HighWaterCommands {
    static func registerWriteThresholdCommands(in table: inout QMPCommandTable) {
        table.register("__io.highwater_set-write-threshold") { (commands, arguments: SetWriteThresholdArguments) in
            try commands.context.graph.lookupForThreshold(nodeName: arguments.nodeName)
                .setNamedWriteThreshold(arguments.name, arguments.settings)
            return [:]
        }
        table.register("__io.highwater_clear-write-threshold") { (commands, arguments: ClearWriteThresholdArguments) in
            let node = try commands.context.graph.lookupForThreshold(nodeName: arguments.nodeName)
            guard node.clearNamedWriteThreshold(arguments.name) else {
                throw QAPIError("Node '\(node.name)' has no write threshold named '\(arguments.name)'")
            }
            return [:]
        }
        table.register("__io.highwater_query-write-thresholds") { (commands, arguments: QueryWriteThresholdsArguments) in
            let graph = commands.context.graph
            let nodes = try arguments.nodeName.map { name in [try graph.lookupForThreshold(nodeName: name)] } ?? graph.nodes
            return .array(nodes.map(WriteThresholdReport.node))
        }
    }
}

/// How a node's thresholds look on QMP.
enum WriteThresholdReport {
    /// One node: its size (re-read, so that a grown device is noticed and its percentages
    /// recomputed), highest written offset, classic threshold and named thresholds.
    static func node(_ node: BlockNode) -> JSONValue {
        let size = (try? node.refreshSize()) ?? node.size
        return [
            "node-name": .string(node.name),
            "size": .unsigned(size),
            "highest-offset": .unsigned(node.statistics.writeHighestOffset),
            "write-threshold": .threshold(node.writeThreshold),
            "thresholds": .array(node.namedWriteThresholds.map(threshold)),
        ]
    }

    private static func threshold(_ threshold: NamedWriteThreshold) -> JSONValue {
        var entry: JSONObject = [
            "name": .string(threshold.name),
            "write-threshold": .unsigned(threshold.value),
        ]
        if let percent = threshold.settings.level.percent { entry["percent"] = .int(Int64(percent)) }
        entry["mode"] = .string(threshold.settings.mode.rawValue)
        entry["fire-if-past"] = .bool(threshold.settings.fireIfPast)
        entry["armed"] = .bool(threshold.isArmed)
        entry["fired"] = .unsigned(threshold.fireCount)
        return .object(entry)
    }

    /// The data of `__io.highwater_WRITE_THRESHOLD`.
    static func event(_ crossing: WriteThresholdCrossing) -> JSONObject {
        var data: JSONObject = [
            "node-name": .string(crossing.nodeName),
            "name": .string(crossing.name),
            "write-threshold": .unsigned(crossing.threshold),
            "amount-exceeded": .unsigned(crossing.amountExceeded),
        ]
        if let percent = crossing.settings.level.percent { data["percent"] = .int(Int64(percent)) }
        data["mode"] = .string(crossing.settings.mode.rawValue)
        data["cause"] = .string(crossing.cause.rawValue)
        data["node-size"] = .unsigned(crossing.nodeSize)
        data["highest-offset"] = .unsigned(crossing.highestOffset)
        return data
    }
}

extension WriteThresholdMode: QAPIEnum {}

private struct SetWriteThresholdArguments: QAPIStruct {
    let nodeName: String
    let name: String
    let settings: WriteThresholdSettings

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        nodeName = try members.required("node-name")
        name = try members.required("name")
        let bytes: UInt64? = try members.optional("bytes")
        let percent: UInt8? = try members.optional("percent")
        let mode = try members.optional("mode", default: WriteThresholdMode.oneShot)
        let fireIfPast = try members.optional("fire-if-past", default: false)
        guard !name.isEmpty else { throw .invalidParameterValue("name", expects: "a non-empty name") }
        let level: WriteThresholdLevel
        switch (bytes, percent) {
        case (let bytes?, nil): level = .bytes(bytes)
        case (nil, let percent?):
            guard (1...100).contains(percent) else { throw .invalidParameterValue("percent", expects: "a percentage from 1 to 100") }
            level = .percent(percent)
        default: throw QAPIError("Exactly one of 'bytes' and 'percent' must be given")
        }
        settings = WriteThresholdSettings(level: level, mode: mode, fireIfPast: fireIfPast)
    }
}

private struct ClearWriteThresholdArguments: QAPIStruct {
    let nodeName: String
    let name: String
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        nodeName = try members.required("node-name")
        name = try members.required("name")
    }
}

private struct QueryWriteThresholdsArguments: QAPIStruct {
    let nodeName: String?
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        nodeName = try members.optional("node-name")
    }
}
