/// Errors of graph management. `description` is QEMU's text, as QMP reports it.
public enum BlockGraphError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A node name that does not start with a letter or has other characters than
    /// letters, digits, `-`, `_` and `.`.
    case invalidNodeName(String)
    /// A node name longer than 31 bytes.
    case nodeNameTooLong
    case duplicateNodeName(String)
    /// `blockdev-add` / `--blockdev` without a node name for the top node.
    case rootNodeNameMissing
    /// `blockdev-del` of an unknown node.
    case nodeNotFound(String)
    /// Lookup by device or node name (`block_resize`, `block-export-add`, child references).
    case deviceNotFound(device: String, nodeName: String)
    /// Lookup by node name only (`block-set-write-threshold`).
    case thresholdNodeNotFound(String)
    /// `blockdev-del` of a node created implicitly (an inline child).
    case notOwnedByMonitor(String)
    /// `blockdev-del` of a node that is another node's child.
    case hasParents(String)
    /// `blockdev-del` of a node used by an export.
    case inUse(String)

    public var description: String {
        switch self {
        case .invalidNodeName(let name): "Invalid node-name: '\(name)'"
        case .nodeNameTooLong: "Node name too long"
        case .duplicateNodeName(let name): "Duplicate nodes with node-name='\(name)'"
        case .rootNodeNameMissing: "'node-name' must be specified for the root node"
        case .nodeNotFound(let name): "Failed to find node with node-name='\(name)'"
        case .deviceNotFound(let device, let nodeName): "Cannot find device='\(device)' nor node-name='\(nodeName)'"
        case .thresholdNodeNotFound(let name): "Device '\(name)' not found"
        case .notOwnedByMonitor(let name): "Node \(name) is not owned by the monitor"
        case .hasParents(let name): "Block device \(name) is in use"
        case .inUse(let name): "Node \(name) is in use"
        }
    }
}
