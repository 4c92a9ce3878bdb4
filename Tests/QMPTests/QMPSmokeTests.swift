import Testing
@testable import QMP

@Test func moduleBuilds() {}
