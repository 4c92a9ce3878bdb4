import BlockCore
import JSON
import NBDServer
import QAPI

/// `nbd-server-start`, `nbd-server-stop`, `block-export-add`, `block-export-del`,
/// `query-block-exports`, and the legacy `nbd-server-add`/`nbd-server-remove`.
extension HighWaterCommands {
    static func registerExportCommands(in table: inout QMPCommandTable) {
        table.register("nbd-server-start") { commands, arguments in
            try commands.startNBDServer(NBDServerOptions.decodeNBDServerStart(arguments))
            return [:]
        }
        table.register("nbd-server-stop") { (commands, _: NoArguments) in
            guard commands.context.nbd.server != nil else { throw QAPIError("NBD server not running") }
            commands.context.exports.removeAll()
            commands.context.nbd.stop()
            return [:]
        }
        table.register("block-export-add") { (commands, options: BlockExportOptions) in
            try commands.addExport(options)
            return [:]
        }
        table.register("block-export-del") { (commands, arguments: BlockExportDelArguments) in
            try commands.context.exports.remove(id: arguments.id, mode: arguments.mode)
            return [:]
        }
        table.register("query-block-exports") { (commands, _: NoArguments) in
            .array(commands.context.exports.exports.reversed().map { state in
                [
                    "node-name": .string(state.export.node.name),
                    "shutting-down": .bool(state.isShuttingDown),
                    "type": "nbd",
                    "id": .string(state.export.id),
                ]
            })
        }
    }

    func startNBDServer(_ options: NBDServerOptions) throws {
        guard context.nbd.server == nil else { throw QAPIError("NBD server already running") }
        try context.nbd.start(options)
    }

    /// Creates an NBD export: the node must exist, the server must run; the export then holds
    /// the node (it cannot be deleted) with the permissions an export claims.
    func addExport(_ options: BlockExportOptions) throws {
        guard case .nbd(let nbdOptions) = options.variant else {
            throw QAPIError("Export type '\(options.type.rawValue)' is not supported by HighWater")
        }
        let node = try context.graph.lookup(device: nil, nodeName: options.nodeName)
        guard context.nbd.server != nil else { throw QAPIError("NBD server not running") }
        let export = NBDExport(
            id: options.id, name: nbdOptions.name ?? options.nodeName, description: nbdOptions.description,
            node: node, writable: options.writable)
        let claim = try node.claim(.export(writable: options.writable))
        do {
            try context.exports.add(export)
        } catch {
            node.release(claim)
            throw error
        }
        exportClaims.withLock { $0[ObjectIdentifier(export)] = claim }
        context.graph.addUser(of: node)
    }

    /// Called once an export is really gone (its last client left): releases its node and
    /// emits `BLOCK_EXPORT_DELETED`. The daemon wires the export registry to this.
    public func exportDeleted(_ export: NBDExport) {
        if let claim = exportClaims.withLock({ $0.removeValue(forKey: ObjectIdentifier(export)) }) {
            export.node.release(claim)
        }
        context.graph.removeUser(of: export.node)
        context.events.emit("BLOCK_EXPORT_DELETED", data: ["id": .string(export.id)])
    }
}

extension NBDExportRemovalMode: QAPIEnum {
    public static var allCases: [Self] { [.safe, .hard] }
}

private struct BlockExportDelArguments: QAPIStruct {
    let id: String
    let mode: NBDExportRemovalMode
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        id = try members.required("id")
        mode = try members.optional("mode", default: .safe)
    }
}
