import Testing
@testable import JSON

@Test func moduleBuilds() {}
