import BlockCore
import BlockDrivers
import QAPI

/// Opens the nodes a `BlockdevOptions` tree describes — inline children first, under
/// generated `#block` names — and inserts them into the graph. On failure nothing it opened
/// stays in the graph.
struct BlockNodeOpener {
    let graph: BlockGraph
    let eventSink: any BlockEventSink

    /// `blockdev-add` / `--blockdev`: the root node must be named.
    func add(_ options: BlockdevOptions) throws -> BlockNode {
        let name = try BlockGraph.requireRootNodeName(options.nodeName)
        var opened: [BlockNode] = []
        do {
            return try open(options, name: name, isExplicit: true, parent: nil, opened: &opened)
        } catch {
            for node in opened.reversed() { graph.removeUnused(node) }
            throw error
        }
    }

    private func open(
        _ options: BlockdevOptions, name: String, isExplicit: Bool, parent: BlockNodeOptions?, opened: inout [BlockNode]
    ) throws -> BlockNode {
        if isExplicit || options.nodeName != nil { try graph.checkNewNodeName(name) }
        let nodeOptions = options.nodeOptions(name: name, isExplicit: isExplicit, parent: parent)
        let driver: any BlockDriver
        switch options.specific {
        case .file(let file):
            driver = try FileDriver(options: file, node: nodeOptions)
        case .hostDevice(let file):
            driver = try HostDeviceDriver(options: file, node: nodeOptions)
        case .raw(let raw, let fileReference):
            let child = try resolve(fileReference, parent: nodeOptions, opened: &opened)
            driver = try RawDriver(options: raw, file: child, node: nodeOptions)
        case .null(let null, let variant):
            driver = try NullDriver(options: null, variant: variant)
        }
        let node: BlockNode
        do {
            node = try BlockNode(options: nodeOptions, driver: driver, eventSink: eventSink)
            try graph.insert(node)
        } catch {
            driver.close()
            throw error
        }
        opened.append(node)
        return node
    }

    /// A child reference: an existing node, or a new implicit one (named as QEMU names them
    /// unless the inline definition names it).
    private func resolve(_ reference: BlockdevRef, parent: BlockNodeOptions, opened: inout [BlockNode]) throws -> BlockNode {
        switch reference {
        case .reference(let name):
            return try graph.lookup(device: name, nodeName: name)
        case .inline(let options):
            let name = options.nodeName ?? graph.makeImplicitNodeName()
            return try open(options, name: name, isExplicit: false, parent: parent, opened: &opened)
        }
    }
}
