import Testing
@testable import QAPI

@Test func moduleBuilds() {}
