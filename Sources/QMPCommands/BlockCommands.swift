import BlockCore
import JSON
import QAPI

/// `blockdev-add`, `blockdev-del`, `block_resize`, `block-set-write-threshold`,
/// `query-named-block-nodes`, `query-blockstats`.
extension HighWaterCommands {
    static func registerBlockCommands(in table: inout QMPCommandTable) {
        table.register("blockdev-add") { (commands, options: BlockdevOptions) in
            try commands.addBlockdev(options)
            return [:]
        }
        table.register("blockdev-del") { (commands, arguments: NodeNameArgument) in
            try commands.context.graph.delete(nodeName: arguments.nodeName)
            return [:]
        }
        table.register("block_resize") { (commands, arguments: BlockResizeArguments) in
            let node = try commands.context.graph.lookup(device: arguments.device, nodeName: arguments.nodeName)
            guard arguments.size >= 0 else { throw QAPIError("Parameter 'size' expects a >0 size") }
            try node.truncate(to: UInt64(arguments.size))
            return [:]
        }
        table.register("block-set-write-threshold") { (commands, arguments: WriteThresholdArguments) in
            try commands.context.graph.lookupForThreshold(nodeName: arguments.nodeName)
                .setWriteThreshold(arguments.writeThreshold)
            return [:]
        }
        table.register("query-named-block-nodes") { (commands, arguments: FlatArgument) in
            .array(commands.context.graph.nodes.map { BlockNodeReport.deviceInfo($0, flat: arguments.flat) })
        }
        table.register("query-blockstats") { (commands, arguments: QueryBlockstatsArguments) in
            // qemu-storage-daemon has no named BlockBackends: without query-nodes the list is empty.
            guard arguments.queryNodes else { return [] }
            return .array(commands.context.graph.nodes.reversed().map(BlockNodeReport.statistics))
        }
    }

    func addBlockdev(_ options: BlockdevOptions) throws {
        _ = try BlockNodeOpener(graph: context.graph, eventSink: context.blockEvents).add(options)
    }
}

private struct NodeNameArgument: QAPIStruct {
    let nodeName: String
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        nodeName = try members.required("node-name")
    }
}

private struct BlockResizeArguments: QAPIStruct {
    let device: String?
    let nodeName: String?
    let size: Int64
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        device = try members.optional("device")
        nodeName = try members.optional("node-name")
        size = try members.required("size")
    }
}

private struct WriteThresholdArguments: QAPIStruct {
    let nodeName: String
    let writeThreshold: UInt64
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        nodeName = try members.required("node-name")
        writeThreshold = try members.required("write-threshold")
    }
}

private struct FlatArgument: QAPIStruct {
    let flat: Bool
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        flat = try members.optional("flat", default: false)
    }
}

private struct QueryBlockstatsArguments: QAPIStruct {
    let queryNodes: Bool
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        queryNodes = try members.optional("query-nodes", default: false)
    }
}
