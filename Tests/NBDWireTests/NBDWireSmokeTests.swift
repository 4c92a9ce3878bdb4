import Testing
@testable import NBDWire

@Test func moduleBuilds() {}
