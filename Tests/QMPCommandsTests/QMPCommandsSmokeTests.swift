import Testing
@testable import QMPCommands

@Test func moduleBuilds() {}
