import Testing
@testable import NBDServer

@Test func moduleBuilds() {}
