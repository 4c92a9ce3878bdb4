import Testing
@testable import HighWaterDaemon

@Test func moduleBuilds() {}
