import Testing
@testable import BlockDrivers

@Test func moduleBuilds() {}
