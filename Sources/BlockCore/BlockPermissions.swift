/// What a user of a node needs from it (`required`) and lets others do (`shared`), QEMU's
/// BLK_PERM_* bits. Their raw values are QEMU's bit numbers, which the `file` driver also
/// uses for its lock bytes so that QEMU's tools see our locks.
public struct BlockPermissions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let consistentRead = BlockPermissions(rawValue: 1 << 0)
    public static let write = BlockPermissions(rawValue: 1 << 1)
    public static let writeUnchanged = BlockPermissions(rawValue: 1 << 2)
    public static let resize = BlockPermissions(rawValue: 1 << 3)
    public static let graphMod = BlockPermissions(rawValue: 1 << 4)
    public static let all: BlockPermissions = [.consistentRead, .write, .writeUnchanged, .resize, .graphMod]

    /// Each single permission with its bit number and QEMU's name, in bit order.
    public static let named: [(permission: BlockPermissions, bit: Int, name: String)] = [
        (.consistentRead, 0, "consistent read"),
        (.write, 1, "write"),
        (.writeUnchanged, 2, "write unchanged"),
        (.resize, 3, "resize"),
        (.graphMod, 4, "change children"),
    ]

    /// QEMU's rendering in error messages: `write, resize`.
    public var names: String {
        Self.named.filter { contains($0.permission) }.map(\.name).joined(separator: ", ")
    }
}

/// One user's claim on a node: an export, a parent node, a running `block_resize`.
public struct BlockPermissionClaim: Sendable, Equatable {
    /// How QEMU names the holder in conflicts: `an unnamed block device`, `node 'q0'`.
    public var holder: String
    /// The role the holder uses the node in: `root` for exports, `file` for a parent's child.
    public var role: String
    public var required: BlockPermissions
    public var shared: BlockPermissions

    public init(holder: String, role: String, required: BlockPermissions, shared: BlockPermissions) {
        self.holder = holder
        self.role = role
        self.required = required
        self.shared = shared
    }

    /// What an export's anonymous BlockBackend claims (QEMU's block/export: it shares
    /// everything but resize).
    public static func export(writable: Bool) -> BlockPermissionClaim {
        BlockPermissionClaim(
            holder: "an unnamed block device", role: "root",
            required: writable ? [.consistentRead, .write] : [.consistentRead],
            shared: [.consistentRead, .write, .writeUnchanged, .graphMod])
    }

    /// What `block_resize` claims while it runs.
    public static let resize = BlockPermissionClaim(
        holder: "an unnamed block device", role: "root", required: .resize, shared: .all)
}

/// Identifies a claim on a node for later update or release.
public struct BlockClaimToken: Sendable, Hashable {
    let value: UInt64
}
