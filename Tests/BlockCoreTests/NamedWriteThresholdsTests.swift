import Testing
@testable import BlockCore

/// The state machine alone: inputs in, firings out.
@Suite struct NamedWriteThresholdsTests {
    typealias Firing = NamedWriteThresholds.Firing

    private func causes(_ firings: [Firing]) -> [String] {
        firings.map { "\($0.threshold.name) \($0.cause.rawValue) +\($0.amountExceeded)" }
    }

    @Test(arguments: [
        (0, 80, 0),
        (1000, 80, 800),
        (999, 50, 499),
        (1 << 30, 10, 107_374_182),
        (.max, 100, .max),
        (.max, 1, .max / 100),
    ] as [(UInt64, UInt8, UInt64)])
    func percentIsExactAndRoundsDown(size: UInt64, percent: UInt8, expected: UInt64) {
        #expect(WriteThresholdLevel.percent(percent).value(forSize: size) == expected)
        #expect(WriteThresholdLevel.bytes(1234).value(forSize: size) == 1234)
    }

    @Test func lowestArmedValueFollowsArmedThresholdsOnly() {
        var set = NamedWriteThresholds()
        #expect(set.lowestArmedValue == .max)
        _ = set.set("high", .init(level: .bytes(900)), size: 1000, highestOffset: 0)
        _ = set.set("low", .init(level: .percent(50)), size: 1000, highestOffset: 0)
        #expect(set.lowestArmedValue == 500)
        let at500 = set.requestEnds(at: 500)
        #expect(causes(at500).isEmpty)
        let at501 = set.requestEnds(at: 501)
        #expect(causes(at501) == ["low write +1"])
        #expect(set.lowestArmedValue == 900)
        let at2000 = set.requestEnds(at: 2000)
        #expect(causes(at2000) == ["high write +1100"])
        #expect(set.lowestArmedValue == .max)
        #expect(set.thresholds.map(\.isArmed) == [false, false])
        #expect(set.thresholds.map(\.fireCount) == [1, 1])
    }

    @Test func oneRequestFiresEveryThresholdItPassesInCreationOrder() {
        var set = NamedWriteThresholds()
        _ = set.set("b", .init(level: .bytes(200)), size: 1000, highestOffset: 0)
        _ = set.set("a", .init(level: .bytes(100)), size: 1000, highestOffset: 0)
        _ = set.set("c", .init(level: .bytes(300)), size: 1000, highestOffset: 0)
        let at250 = set.requestEnds(at: 250)
        #expect(causes(at250) == ["b write +50", "a write +150"])
        #expect(set.lowestArmedValue == 300)
    }

    @Test func endingExactlyAtAValueIsNotPastIt() {
        var set = NamedWriteThresholds()
        _ = set.set("low", .init(level: .bytes(100)), size: 1000, highestOffset: 0)
        _ = set.set("edge", .init(level: .bytes(200)), size: 1000, highestOffset: 0)
        let at200 = set.requestEnds(at: 200)
        #expect(causes(at200) == ["low write +100"])
        #expect(set.thresholds.map(\.isArmed) == [false, true])
    }

    @Test func settingAgainReplacesInPlaceAndRearms() {
        var set = NamedWriteThresholds()
        _ = set.set("a", .init(level: .bytes(100)), size: 1000, highestOffset: 0)
        _ = set.set("b", .init(level: .bytes(500)), size: 1000, highestOffset: 0)
        _ = set.requestEnds(at: 200)
        _ = set.set("a", .init(level: .bytes(300), mode: .reArm), size: 1000, highestOffset: 200)
        #expect(set.thresholds.map(\.name) == ["a", "b"])
        #expect(set.thresholds[0].isArmed && set.thresholds[0].value == 300 && set.thresholds[0].fireCount == 0)
        #expect(set.lowestArmedValue == 300)
        let cleared = set.clear("a")
        #expect(cleared)
        let clearedAgain = set.clear("a")
        #expect(!clearedAgain)
        #expect(set.thresholds.map(\.name) == ["b"])
        #expect(set.lowestArmedValue == 500)
    }

    @Test func settingBelowTheHighestOffsetFiresOnlyWithFireIfPast() {
        var set = NamedWriteThresholds()
        let quiet = set.set("quiet", .init(level: .bytes(100)), size: 1000, highestOffset: 400)
        #expect(quiet == nil)
        #expect(set.thresholds[0].isArmed)
        let firing = set.set("loud", .init(level: .bytes(100), fireIfPast: true), size: 1000, highestOffset: 400)
        #expect(firing.map { causes([$0]) } == ["loud set +300"])
        #expect(set.thresholds[1].isArmed == false)
        // Exactly at the value is not past it.
        let atTheEdge = set.set("edge", .init(level: .bytes(400), fireIfPast: true), size: 1000, highestOffset: 400)
        #expect(atTheEdge == nil)
        #expect(set.lowestArmedValue == 100)
    }

    @Test func resizeRecomputesPercentagesForEveryThreshold() {
        var set = NamedWriteThresholds()
        _ = set.set("pct", .init(level: .percent(80)), size: 1000, highestOffset: 0)
        _ = set.set("fixed", .init(level: .bytes(700)), size: 1000, highestOffset: 0)
        _ = set.set("spent", .init(level: .percent(10)), size: 1000, highestOffset: 0)
        _ = set.requestEnds(at: 150)
        let grown = set.resized(to: 2000, highestOffset: 150)
        #expect(grown.isEmpty)
        #expect(set.thresholds.map(\.value) == [1600, 700, 200])
        // A disarmed one-shot threshold follows the size but stays disarmed.
        #expect(set.thresholds.map(\.isArmed) == [true, true, false])
        #expect(set.lowestArmedValue == 700)
    }

    @Test func reArmingThresholdFiresAgainAfterEachResize() {
        var set = NamedWriteThresholds()
        _ = set.set("grow", .init(level: .percent(80), mode: .reArm), size: 1000, highestOffset: 0)
        let at900 = set.requestEnds(at: 900)
        #expect(causes(at900) == ["grow write +100"])
        let at950 = set.requestEnds(at: 950)
        #expect(causes(at950).isEmpty)
        #expect(!set.thresholds[0].isArmed)
        // The manager grows the volume: armed again at 80 % of the new size.
        let grown = set.resized(to: 2000, highestOffset: 950)
        #expect(grown.isEmpty)
        #expect(set.thresholds[0].isArmed && set.thresholds[0].value == 1600)
        let at1500 = set.requestEnds(at: 1500)
        #expect(causes(at1500).isEmpty)
        let at1700 = set.requestEnds(at: 1700)
        #expect(causes(at1700) == ["grow write +100"])
        #expect(set.thresholds[0].fireCount == 2)
    }

    @Test func reArmingWithFireIfPastReportsAGrowthThatWasNotEnough() {
        var set = NamedWriteThresholds()
        _ = set.set("grow", .init(level: .percent(50), mode: .reArm, fireIfPast: true), size: 1000, highestOffset: 0)
        _ = set.requestEnds(at: 800)
        // 50 % of 1400 is 700: still below what was written.
        let grownTooLittle = set.resized(to: 1400, highestOffset: 800)
        #expect(causes(grownTooLittle) == ["grow resize +100"])
        #expect(!set.thresholds[0].isArmed)
        let grownEnough = set.resized(to: 4000, highestOffset: 800)
        #expect(grownEnough.isEmpty)
        #expect(set.thresholds[0].isArmed && set.thresholds[0].value == 2000)
    }

    @Test func reArmingWithoutFireIfPastWaitsForTheNextWritePastIt() {
        var set = NamedWriteThresholds()
        _ = set.set("grow", .init(level: .percent(50), mode: .reArm), size: 1000, highestOffset: 0)
        _ = set.requestEnds(at: 800)
        let grown = set.resized(to: 1400, highestOffset: 800)
        #expect(grown.isEmpty)
        #expect(set.thresholds[0].isArmed && set.thresholds[0].value == 700)
        let at701 = set.requestEnds(at: 701)
        #expect(causes(at701) == ["grow write +1"])
    }

    @Test func shrinkingBelowTheHighestOffsetFiresArmedFireIfPastThresholds() {
        var set = NamedWriteThresholds()
        _ = set.set("watch", .init(level: .percent(50), fireIfPast: true), size: 1000, highestOffset: 300)
        _ = set.set("silent", .init(level: .percent(50)), size: 1000, highestOffset: 300)
        let shrunk = set.resized(to: 400, highestOffset: 300)
        #expect(causes(shrunk) == ["watch resize +100"])
        #expect(set.thresholds.map(\.isArmed) == [false, true])
    }
}
