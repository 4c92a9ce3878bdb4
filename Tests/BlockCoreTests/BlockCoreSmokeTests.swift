import Testing
@testable import BlockCore

@Test func moduleBuilds() {}
