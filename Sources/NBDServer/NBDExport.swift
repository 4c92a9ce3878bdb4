import BlockCore
import NBDWire

/// A block node published over NBD under a name (QMP `block-export-add type=nbd`).
public final class NBDExport: Sendable {
    /// The QMP export id (`block-export-del id=...`).
    public let id: String
    /// The name clients ask for (defaults to the node name in QMP).
    public let name: String
    /// Sent as `NBD_INFO_DESCRIPTION` and in `NBD_OPT_LIST` answers.
    public let description: String?
    public let node: BlockNode
    /// Clients may write (the export is writable and so is the node).
    public let isWritable: Bool

    public init(id: String, name: String, description: String? = nil, node: BlockNode, writable: Bool) {
        self.id = id
        self.name = name
        self.description = description
        self.node = node
        self.isWritable = writable && !node.isReadOnly
    }

    /// The export flags, as QSD 7.2 sends them: everything we implement, MULTI_CONN unless the
    /// server takes a single connection (nodes keep no per-connection cache); DF only once
    /// structured replies are on.
    public func transmissionFlags(structuredReplies: Bool, multipleConnections: Bool = true) -> NBDTransmissionFlags {
        var flags: NBDTransmissionFlags = [.hasFlags, .sendFlush, .sendFUA, .sendCache]
        if multipleConnections { flags.insert(.canMultiConn) }
        if isWritable {
            flags.formUnion([.sendTrim, .sendWriteZeroes, .sendFastZero])
        } else {
            flags.insert(.readOnly)
        }
        if structuredReplies { flags.insert(.sendDF) }
        return flags
    }
}
