import Synchronization

/// A live client connection bound to an export, as the registry sees it: something it can
/// close when the export is removed with `mode=hard`.
public protocol NBDExportConnection: AnyObject, Sendable {
    /// Closes the connection from any thread; the connection detaches itself once closed.
    func close()
}

/// `block-export-del` modes.
public enum NBDExportRemovalMode: String, Sendable {
    /// Fail while clients are connected.
    case safe
    /// Disconnect the clients.
    case hard
}

/// Errors of export management, with QEMU's texts.
public enum NBDExportRegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    case duplicateID(String)
    case duplicateName(String)
    case notFound(id: String)
    case alreadyShuttingDown(id: String)
    case inUse(id: String)

    public var description: String {
        switch self {
        case .duplicateID(let id): "Block export id '\(id)' is already in use"
        case .duplicateName(let name): "NBD server already has export named '\(name)'"
        case .notFound(let id): "Export '\(id)' is not found"
        case .alreadyShuttingDown(let id): "Export '\(id)' is already shutting down"
        case .inUse(let id): "export '\(id)' still in use"
        }
    }
}

/// The exports of the NBD server and the connections using each. Thread-safe.
///
/// Removing an export hides it from new clients at once; the export is really gone when its
/// last connection has closed, and only then does the registry call `onExportDeleted` (QEMU
/// emits `BLOCK_EXPORT_DELETED` at that moment). The callback runs outside the registry's
/// lock, either on the thread calling `remove` (no clients) or on the thread where the last
/// connection detached (an event loop): the receiver should hand it off.
public final class NBDExportRegistry: Sendable {
    /// An export as `query-block-exports` lists it.
    public struct ExportState: Sendable {
        public let export: NBDExport
        public let isShuttingDown: Bool
        public let connectionCount: Int
    }

    private struct Entry {
        let export: NBDExport
        var connections: [ObjectIdentifier: any NBDExportConnection] = [:]
        var isShuttingDown = false
    }

    private struct State {
        /// In creation order: `NBD_OPT_LIST` and `query-block-exports` list them so.
        var entries: [Entry] = []

        func index(id: String) -> Int? { entries.firstIndex { $0.export.id == id } }
    }

    private let state = Mutex(State())
    private let onExportDeleted: @Sendable (NBDExport) -> Void

    public init(onExportDeleted: @escaping @Sendable (NBDExport) -> Void = { _ in }) {
        self.onExportDeleted = onExportDeleted
    }

    public func add(_ export: NBDExport) throws(NBDExportRegistryError) {
        let result: Result<Void, NBDExportRegistryError> = state.withLock { state in
            if state.index(id: export.id) != nil { return .failure(.duplicateID(export.id)) }
            if state.entries.contains(where: { !$0.isShuttingDown && $0.export.name == export.name }) {
                return .failure(.duplicateName(export.name))
            }
            state.entries.append(Entry(export: export))
            return .success(())
        }
        try result.get()
    }

    /// The export clients may connect to under `name` (not one being removed).
    public func lookup(name: String) -> NBDExport? {
        state.withLock { state in
            state.entries.first { !$0.isShuttingDown && $0.export.name == name }?.export
        }
    }

    /// The export with QMP id `id`, shutting down or not.
    public func export(id: String) -> NBDExport? {
        state.withLock { state in state.index(id: id).map { state.entries[$0].export } }
    }

    /// Exports clients can connect to, in creation order.
    public var activeExports: [NBDExport] {
        state.withLock { state in state.entries.filter { !$0.isShuttingDown }.map(\.export) }
    }

    /// Every export still present (including those waiting for clients to leave).
    public var exports: [ExportState] {
        state.withLock { state in
            state.entries.map { ExportState(export: $0.export, isShuttingDown: $0.isShuttingDown, connectionCount: $0.connections.count) }
        }
    }

    /// Lets every export run its held writes again if its volume has grown (called after
    /// QMP commands, which may have grown a node).
    public func volumesMayHaveGrown() {
        for export in state.withLock({ $0.entries.map(\.export) }) { export.volumeMayHaveGrown() }
    }

    /// Starts removing an export (`block-export-del`). `safe` fails while clients are
    /// connected; `hard` closes them. `onExportDeleted` follows once no client is left.
    public func remove(id: String, mode: NBDExportRemovalMode = .safe) throws(NBDExportRegistryError) {
        let result: Result<(deleted: NBDExport?, toClose: [any NBDExportConnection]), NBDExportRegistryError> = state.withLock { state in
            guard let index = state.index(id: id) else { return .failure(.notFound(id: id)) }
            if state.entries[index].isShuttingDown { return .failure(.alreadyShuttingDown(id: id)) }
            let connections = Array(state.entries[index].connections.values)
            if mode == .safe && !connections.isEmpty { return .failure(.inUse(id: id)) }
            if connections.isEmpty {
                return .success((state.entries.remove(at: index).export, []))
            }
            state.entries[index].isShuttingDown = true
            return .success((nil, connections))
        }
        let (deleted, toClose) = try result.get()
        for connection in toClose { connection.close() }
        if let deleted { onExportDeleted(deleted) }
    }

    /// Removes every export, disconnecting its clients (`nbd-server-stop`).
    public func removeAll() {
        let (deleted, toClose) = state.withLock { state in
            var deleted: [NBDExport] = []
            var toClose: [any NBDExportConnection] = []
            state.entries.removeAll { entry in
                if entry.connections.isEmpty {
                    if !entry.isShuttingDown { deleted.append(entry.export) }
                    return true
                }
                return false
            }
            for index in state.entries.indices where !state.entries[index].isShuttingDown {
                state.entries[index].isShuttingDown = true
                toClose.append(contentsOf: state.entries[index].connections.values)
            }
            return (deleted, toClose)
        }
        for connection in toClose { connection.close() }
        for export in deleted { onExportDeleted(export) }
    }

    /// Binds a connection that finished negotiation to its export. Fails when the export has
    /// been removed meanwhile: the connection must then close.
    public func attach(_ connection: any NBDExportConnection, to export: NBDExport) -> Bool {
        state.withLock { state in
            guard let index = state.entries.firstIndex(where: { $0.export === export }),
                  !state.entries[index].isShuttingDown else { return false }
            state.entries[index].connections[ObjectIdentifier(connection)] = connection
            return true
        }
    }

    /// Unbinds a closed connection; completes a pending removal when it was the last one.
    public func detach(_ connection: any NBDExportConnection, from export: NBDExport) {
        let deleted: NBDExport? = state.withLock { state in
            guard let index = state.entries.firstIndex(where: { $0.export === export }) else { return nil }
            state.entries[index].connections.removeValue(forKey: ObjectIdentifier(connection))
            guard state.entries[index].isShuttingDown, state.entries[index].connections.isEmpty else { return nil }
            return state.entries.remove(at: index).export
        }
        if let deleted { onExportDeleted(deleted) }
    }
}
