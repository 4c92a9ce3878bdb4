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
    /// What a write that finds no space does.
    public let noSpacePolicy: NBDNoSpacePolicy
    /// The writes waiting for space (`hold` only).
    let stalledWrites: NBDStalledWrites?

    public init(id: String, name: String, description: String? = nil, node: BlockNode, writable: Bool,
                noSpacePolicy: NBDNoSpacePolicy = .report) {
        self.id = id
        self.name = name
        self.description = description
        self.node = node
        self.isWritable = writable && !node.isReadOnly
        self.noSpacePolicy = noSpacePolicy
        if case .hold(let timeout) = noSpacePolicy {
            stalledWrites = NBDStalledWrites(exporting: node, timeout: timeout)
        } else {
            stalledWrites = nil
        }
    }

    /// Runs held writes again at once if the volume under the export has grown (after a
    /// QMP command: `block_resize`, ...). Cheap when nothing is held.
    public func volumeMayHaveGrown() {
        stalledWrites?.check()
    }

    /// Writes held for lack of space right now.
    public var heldWriteCount: Int { stalledWrites?.heldCount ?? 0 }

    /// The export's I/O status, as QEMU reports a device's `io-status` where an error can
    /// stop it: `.noSpace` while a write is held that found no space at the volume's current
    /// size, `.ok` otherwise (also while held writes are about to run again after growth);
    /// nil unless writes are held on ENOSPC (`on-enospc=hold`). A manager that missed the
    /// stall's event learns of it here.
    public var ioStatus: NBDExportIOStatus? {
        guard let stalledWrites else { return nil }
        return stalledWrites.isStalled ? .noSpace : .ok
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
