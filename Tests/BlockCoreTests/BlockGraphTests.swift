import Synchronization
import Testing
@testable import BlockCore

@Suite struct BlockGraphTests {
    @Test func validatesNodeNamesLikeQEMU() throws {
        for name in ["a", "a-b_c.d", "Z9", String(repeating: "a", count: 31)] {
            try BlockGraph.validateNodeName(name)
        }
        for name in ["1bad", "", "#block051", "a+b", "n0,x=1", "_a", "é"] {
            #expect(throws: BlockGraphError.invalidNodeName(name)) { try BlockGraph.validateNodeName(name) }
        }
        #expect(throws: BlockGraphError.nodeNameTooLong) { try BlockGraph.validateNodeName(String(repeating: "a", count: 32)) }
        #expect(BlockGraphError.invalidNodeName("1bad").description == "Invalid node-name: '1bad'")
        #expect(BlockGraphError.nodeNameTooLong.description == "Node name too long")
        #expect(throws: BlockGraphError.rootNodeNameMissing) { _ = try BlockGraph.requireRootNodeName(nil) }
        #expect(BlockGraphError.rootNodeNameMissing.description == "'node-name' must be specified for the root node")
    }

    @Test func implicitNamesCountAcrossTheGraphWithTwoRandomDigits() {
        let digits = Mutex([51, 8, 99])
        let graph = BlockGraph(randomSuffix: { digits.withLock { $0.removeFirst() } })
        #expect(graph.makeImplicitNodeName() == "#block051")
        #expect(graph.makeImplicitNodeName() == "#block108")
        #expect(graph.makeImplicitNodeName() == "#block299")
        let random = BlockGraph()
        #expect(random.makeImplicitNodeName().wholeMatch(of: /#block0[0-9]{2}/) != nil)
    }

    @Test func listsNewestFirstAndRefusesDuplicates() throws {
        let graph = BlockGraph()
        let (a, _, _) = try makeNode("a")
        let (b, _, _) = try makeNode("b")
        try graph.insert(a)
        try graph.insert(b)
        #expect(graph.nodes.map(\.name) == ["b", "a"])
        let (again, _, _) = try makeNode("a")
        #expect(throws: BlockGraphError.duplicateNodeName("a")) { try graph.insert(again) }
        #expect(throws: BlockGraphError.duplicateNodeName("a")) { try graph.checkNewNodeName("a") }
        #expect(throws: BlockGraphError.invalidNodeName("1a")) { try graph.checkNewNodeName("1a") }
        #expect(BlockGraphError.duplicateNodeName("f0").description == "Duplicate nodes with node-name='f0'")
        let (bad, _, _) = try makeNode("1bad")
        #expect(throws: BlockGraphError.invalidNodeName("1bad")) { try graph.insert(bad) }
    }

    @Test func lookupsUseQEMUTexts() throws {
        let graph = BlockGraph()
        let (a, _, _) = try makeNode("a")
        try graph.insert(a)
        #expect(try graph.lookup(device: nil, nodeName: "a") === a)
        #expect(try graph.lookupForThreshold(nodeName: "a") === a)
        #expect(throws: BlockGraphError.deviceNotFound(device: "", nodeName: "x")) { _ = try graph.lookup(device: nil, nodeName: "x") }
        #expect(throws: BlockGraphError.deviceNotFound(device: "a", nodeName: "")) { _ = try graph.lookup(device: "a", nodeName: nil) }
        #expect(BlockGraphError.deviceNotFound(device: "", nodeName: "x").description == "Cannot find device='' nor node-name='x'")
        #expect(throws: BlockGraphError.thresholdNodeNotFound("x")) { _ = try graph.lookupForThreshold(nodeName: "x") }
        #expect(BlockGraphError.thresholdNodeNotFound("x").description == "Device 'x' not found")
    }

    /// r0 (explicit) over #block (implicit), plus an explicit f0 under r1.
    private func makeChain(_ graph: BlockGraph) throws -> (r0: BlockNode, implicit: BlockNode, implicitDriver: MemoryDriver, f0: BlockNode, r1: BlockNode) {
        let (implicit, implicitDriver, _) = try makeNode(graph.makeImplicitNodeName(), isExplicit: false)
        try graph.insert(implicit)
        let (r0, _, _) = try makeNode("r0", children: [("file", implicit)])
        try graph.insert(r0)
        let (f0, _, _) = try makeNode("f0")
        try graph.insert(f0)
        let (r1, _, _) = try makeNode("r1", children: [("file", f0)])
        try graph.insert(r1)
        return (r0, implicit, implicitDriver, f0, r1)
    }

    @Test func deletionRulesAndTexts() throws {
        let graph = BlockGraph()
        let chain = try makeChain(graph)
        #expect(throws: BlockGraphError.nodeNotFound("x")) { try graph.delete(nodeName: "x") }
        #expect(BlockGraphError.nodeNotFound("x").description == "Failed to find node with node-name='x'")
        #expect(throws: BlockGraphError.notOwnedByMonitor(chain.implicit.name)) { try graph.delete(nodeName: chain.implicit.name) }
        #expect(BlockGraphError.notOwnedByMonitor("#block051").description == "Node #block051 is not owned by the monitor")
        #expect(throws: BlockGraphError.hasParents("f0")) { try graph.delete(nodeName: "f0") }
        #expect(BlockGraphError.hasParents("f0").description == "Block device f0 is in use")
        graph.addUser(of: chain.r1)
        #expect(throws: BlockGraphError.inUse("r1")) { try graph.delete(nodeName: "r1") }
        #expect(BlockGraphError.inUse("q0").description == "Node q0 is in use")
        graph.removeUser(of: chain.r1)
        #expect(graph.parents(of: chain.f0).map(\.parent.name) == ["r1"])

        // Deleting r0 takes its implicit child along; deleting r1 leaves explicit f0.
        #expect(try graph.delete(nodeName: "r0").map(\.name) == ["r0", chain.implicit.name])
        #expect(chain.implicitDriver.isClosed)
        #expect(try graph.delete(nodeName: "r1").map(\.name) == ["r1"])
        #expect(graph.nodes.map(\.name) == ["f0"])
        try graph.delete(nodeName: "f0")
        #expect(graph.nodes.isEmpty)
    }

    @Test func anImplicitChildOutlivesItsParentWhileUsed() throws {
        let graph = BlockGraph()
        let chain = try makeChain(graph)
        let (r2, _, _) = try makeNode("r2", children: [("file", chain.implicit)])
        try graph.insert(r2)
        try graph.delete(nodeName: "r0")
        #expect(graph.node(named: chain.implicit.name) != nil)
        graph.addUser(of: chain.implicit)
        try graph.delete(nodeName: "r2")
        #expect(graph.node(named: chain.implicit.name) != nil)
        #expect(!chain.implicitDriver.isClosed)
        graph.removeUser(of: chain.implicit)
        #expect(graph.node(named: chain.implicit.name) == nil)
        #expect(chain.implicitDriver.isClosed)
    }

    @Test func removeAllClosesEverything() throws {
        let graph = BlockGraph()
        let chain = try makeChain(graph)
        graph.removeAll()
        #expect(graph.nodes.isEmpty)
        #expect(chain.implicitDriver.isClosed)
    }
}
