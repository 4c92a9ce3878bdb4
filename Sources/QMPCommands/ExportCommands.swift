import BlockCore
import Dispatch
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
            commands.removeAllExports()
            commands.context.nbd.stop()
            return [:]
        }
        table.register("block-export-add") { (commands, options: BlockExportOptions) in
            try commands.addExport(options)
            return [:]
        }
        table.register("block-export-del") { (commands, arguments: BlockExportDelArguments) in
            try commands.removeExport(id: arguments.id, mode: arguments.mode)
            return [:]
        }
        // The deprecated forms: the export's id is its name.
        table.register("nbd-server-add") { (commands, arguments: NBDServerAddArguments) in
            try commands.addExport(
                BlockExportOptions(
                    id: arguments.name ?? arguments.device, nodeName: arguments.device,
                    variant: .nbd(NBDExportOptions(name: arguments.name, description: arguments.description)),
                    writable: arguments.writable),
                device: arguments.device)
            return [:]
        }
        table.register("nbd-server-remove") { (commands, arguments: NBDServerRemoveArguments) in
            try commands.removeExport(id: arguments.name, mode: arguments.mode)
            return [:]
        }
        table.register("query-block-exports") { (commands, _: NoArguments) in
            .array(commands.context.exports.exports.reversed().map { state in
                exportInfo(
                    id: state.export.id, nodeName: state.export.node.name, isShuttingDown: state.isShuttingDown,
                    ioStatus: state.export.ioStatus)
            })
        }
    }

    /// One entry of `query-block-exports`, QEMU's `BlockExportInfo`, with the downstream
    /// `__io.highwater_io-status` (`ok` or `nospace`, see `NBDExport.ioStatus`) for exports
    /// that hold writes on ENOSPC.
    static func exportInfo(id: String, nodeName: String, isShuttingDown: Bool, ioStatus: NBDExportIOStatus?) -> JSONValue {
        var entry: JSONObject = [
            "node-name": .string(nodeName),
            "shutting-down": .bool(isShuttingDown),
            "type": "nbd",
            "id": .string(id),
        ]
        if let ioStatus { entry["__io.highwater_io-status"] = .string(ioStatus.rawValue) }
        return .object(entry)
    }

    func startNBDServer(_ options: NBDServerOptions) throws {
        guard context.nbd.server == nil else { throw QAPIError("NBD server already running") }
        // No TLS credential objects can exist: `object-add` knows only iothreads.
        if let credentials = options.tlsCreds { throw QAPIError("No TLS credentials with id '\(credentials)'") }
        try context.nbd.start(options)
    }

    /// Creates an NBD export: the node must exist, the server must run; the export then holds
    /// the node (it cannot be deleted) with the permissions an export claims.
    func addExport(_ options: BlockExportOptions, device: String? = nil) throws {
        guard case .nbd(let nbdOptions) = options.variant else {
            throw QAPIError("Export type '\(options.type.rawValue)' is not supported by HighWater")
        }
        // QEMU's order of checks: the id's form, a duplicate id, the node, the server.
        guard Self.isWellFormedID(options.id) else { throw QAPIError("Invalid block export id") }
        guard context.exports.export(id: options.id) == nil else {
            throw QAPIError("Block export id '\(options.id)' is already in use")
        }
        let node = try context.graph.lookup(device: device, nodeName: options.nodeName)
        if let iothread = options.iothread, !objects.withLock({ $0.contains(iothread) }) {
            throw QAPIError("iothread \"\(iothread)\" not found")
        }
        guard context.nbd.server != nil else { throw QAPIError("NBD server not running") }
        let name = nbdOptions.name ?? options.nodeName
        // NBD strings are limited to 4096 bytes.
        if name.utf8.count > 4096 { throw QAPIError("export name '\(name)' too long") }
        if let description = nbdOptions.description, description.utf8.count > 4096 {
            throw QAPIError("description '\(description)' too long")
        }
        if context.exports.lookup(name: name) != nil { throw QAPIError("NBD server already has export named '\(name)'") }
        // HighWater keeps no dirty bitmaps, so any named one is missing.
        if let bitmap = nbdOptions.bitmaps?.first {
            switch bitmap {
            case .local(let name): throw QAPIError("Bitmap '\(name)' is not found")
            case .external(let node, let name):
                _ = try context.graph.lookup(device: node, nodeName: node)
                throw QAPIError("Bitmap '\(name)' is not found")
            }
        }
        if nbdOptions.allocationDepth { throw QAPIError("allocation-depth is not supported by HighWater") }
        let export = NBDExport(
            id: options.id, name: name, description: nbdOptions.description,
            node: node, writable: options.writable, noSpacePolicy: nbdOptions.noSpacePolicy)
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

    /// QEMU's rule for ids: a letter, then letters, digits, `-`, `.` and `_`.
    static func isWellFormedID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first.properties.isASCIIHexDigit || first.isASCII,
              (first >= "a" && first <= "z") || (first >= "A" && first <= "Z") else { return false }
        return id.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-._".unicodeScalars.contains(scalar))
        }
    }

    /// Called once an export is really gone (its last client left): releases its node and
    /// emits `BLOCK_EXPORT_DELETED`, or holds the event back while a command collects them.
    /// The daemon wires the export registry to this.
    public func exportDeleted(_ export: NBDExport) {
        if let claim = exportClaims.withLock({ $0.removeValue(forKey: ObjectIdentifier(export)) }) {
            export.node.release(claim)
        }
        context.graph.removeUser(of: export.node)
        let emitNow = deletionEvents.withLock { events in
            if events.collecting { events.collected.append(export.id) }
            return !events.collecting
        }
        if emitNow { emitExportDeleted(id: export.id) }
        exportDeletions.signal()
    }

    /// `block-export-del`: without clients the export goes at once (its event before the
    /// reply); with `mode=hard` its clients are disconnected and the event follows the reply,
    /// as in QEMU.
    func removeExport(id: String, mode: NBDExportRemovalMode) throws {
        guard mode == .hard else { return try context.exports.remove(id: id, mode: mode) }
        deletionEvents.withLock { $0.collecting = true }
        do {
            try context.exports.remove(id: id, mode: mode)
        } catch {
            emitCollectedDeletions(order: [])
            throw error
        }
        deletionEvents.withLock { $0.flushAfterReply = true }
    }

    public func commandReplied() {
        guard deletionEvents.withLock({ $0.flushAfterReply }) else { return }
        emitCollectedDeletions(order: [])
    }

    /// Removes every export, disconnecting their clients, and waits until they are gone, so
    /// that their `BLOCK_EXPORT_DELETED` events precede the command's reply, in creation order,
    /// as in QEMU.
    func removeAllExports() {
        let order = context.exports.exports.map(\.export.id)
        deletionEvents.withLock { $0.collecting = true }
        context.exports.removeAll()
        // Wait for every export's deletion itself, not for the registry to be empty: the
        // registry forgets an export just before it reports the deletion.
        let deadline = DispatchTime.now() + .seconds(10)
        while !deletionEvents.withLock({ Set($0.collected).isSuperset(of: order) }) {
            guard exportDeletions.wait(timeout: deadline) == .success else { break }
        }
        emitCollectedDeletions(order: order)
    }

    /// Stops collecting and emits what was collected, those named in `order` first.
    private func emitCollectedDeletions(order: [String]) {
        let collected = deletionEvents.withLock { events in
            defer { events = DeletionEvents() }
            return events.collected
        }
        let ordered = order.filter(collected.contains) + collected.filter { !order.contains($0) }
        for id in ordered { emitExportDeleted(id: id) }
    }

    private func emitExportDeleted(id: String) {
        context.events.emit("BLOCK_EXPORT_DELETED", data: ["id": .string(id)])
    }
}

/// `BLOCK_EXPORT_DELETED` events held back while a command runs.
struct DeletionEvents {
    var collecting = false
    var collected: [String] = []
    /// Emit what was collected once the reply is out (`block-export-del mode=hard`).
    var flushAfterReply = false
}

extension NBDExportOptions {
    /// `__io.highwater_on-enospc` and `__io.highwater_enospc-timeout` (0: no timeout).
    var noSpacePolicy: NBDNoSpacePolicy {
        switch onNoSpace {
        case .report: .report
        case .hold: .hold(timeout: noSpaceTimeoutSeconds == 0 ? nil : .seconds(Int64(noSpaceTimeoutSeconds)))
        }
    }
}

extension NBDExportRemovalMode: QAPIEnum {
    public static var allCases: [Self] { [.safe, .hard] }
}

private struct NBDServerAddArguments: QAPIStruct {
    let device: String
    let name: String?
    let description: String?
    let writable: Bool
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        device = try members.required("device")
        name = try members.optional("name")
        description = try members.optional("description")
        writable = try members.optional("writable", default: false)
        if members.contains("bitmap") { throw QAPIError("Dirty bitmaps are not supported by HighWater") }
    }
}

private struct NBDServerRemoveArguments: QAPIStruct {
    let name: String
    let mode: NBDExportRemovalMode
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        name = try members.required("name")
        mode = try members.optional("mode", default: .safe)
    }
}

private struct BlockExportDelArguments: QAPIStruct {
    let id: String
    let mode: NBDExportRemovalMode
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        id = try members.required("id")
        mode = try members.optional("mode", default: .safe)
    }
}
