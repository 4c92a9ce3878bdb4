import Testing
@testable import JSON

private func qdictKeys(_ keys: [String]) -> [String] {
    QEMUHashOrder.qdictOrder(keys.map { (key: $0, value: ()) }).map(\.key)
}

@Test func qdictOrderReproducesQSDOutput() {
    // Insertion order = QAPI member order; expected = what QSD printed.
    #expect(qdictKeys(["major", "minor", "micro"]) == ["micro", "minor", "major"])
    #expect(qdictKeys(["qemu", "package"]) == ["qemu", "package"])
    #expect(qdictKeys(["return", "id"]) == ["return", "id"])
    #expect(qdictKeys(["error", "id"]) == ["id", "error"])
    #expect(qdictKeys(["class", "desc"]) == ["class", "desc"])
    #expect(qdictKeys(["event", "data", "timestamp"]) == ["timestamp", "event", "data"])
    #expect(qdictKeys(["seconds", "microseconds"]) == ["seconds", "microseconds"])
    #expect(qdictKeys(["node-name", "write-threshold", "amount-exceeded"]) == ["node-name", "write-threshold", "amount-exceeded"])
    #expect(qdictKeys(["file", "node-name", "ro", "drv", "encrypted", "detect_zeroes", "bps", "bps_rd", "bps_wr",
                       "iops", "iops_rd", "iops_wr", "image", "cache", "write_threshold", "backing_file_depth"])
        == ["iops_rd", "detect_zeroes", "image", "iops_wr", "ro", "node-name", "backing_file_depth", "drv", "iops",
            "bps_wr", "write_threshold", "encrypted", "bps", "bps_rd", "cache", "file"])
    #expect(qdictKeys(["filename", "format", "dirty-flag", "actual-size", "virtual-size", "cluster-size", "format-specific"])
        == ["virtual-size", "filename", "cluster-size", "format", "actual-size", "format-specific", "dirty-flag"])
}

@Test func qdictOrderOfQMPRequestMembers() {
    // QSD checks request members in this order, which decides which error it reports.
    #expect(qdictKeys(["id", "arguments", "execute", "control", "exec-oob", "bogus"])
        == ["bogus", "exec-oob", "control", "execute", "arguments", "id"])
}

@Test func glibOrderMatchesQSDLeftoverArgumentChoice() {
    // QSD reports 'y' for {"x":1,"y":2} and for {"y":1,"x":2}.
    #expect(QEMUHashOrder.glibOrder(["x", "y"]).first == "y")
    #expect(QEMUHashOrder.glibOrder(["y", "x"]).first == "y")
    #expect(Set(QEMUHashOrder.glibOrder((0..<50).map { "key\($0)" })) == Set((0..<50).map { "key\($0)" }))
}
