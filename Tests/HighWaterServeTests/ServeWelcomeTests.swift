import Testing
@testable import HighWaterServe

@Suite struct ServeWelcomeTests {
    let layout = ServeLayout(folder: "/d")

    @Test func itSaysWhereToConnectAndWhatTheControllerDoes() {
        let text = ServeWelcome.text(layout: layout, options: ServeOptions(), virtualSize: 10 << 30, volumeSize: 256 << 20)
        #expect(text.hasPrefix("HighWater is serving a 10 GiB thin qcow2 disk on a 256 MiB volume (/d/disk.qcow2)."))
        #expect(text.contains("nbdinfo 'nbd+unix:///disk0?socket=/d/nbd.sock'"))
        #expect(text.contains("qemu-io -f raw -c 'write -P 0xab 0 1G' 'nbd+unix:///disk0?socket=/d/nbd.sock'"))
        #expect(text.contains("highwater watch /d/qmp.sock"))
        // The defaults: threshold at 256 MiB - 128 MiB, chunks of 256 MiB, up to 1.1 x 10 GiB.
        #expect(text.contains("write threshold on it at 128 MiB, when 128 MiB is left"))
        #expect(text.contains("by 256 MiB (up to 11 GiB), then arms the next threshold"))
        #expect(text.contains("(stderr)"))
        #expect(text.hasSuffix("Ctrl-C stops everything."))
    }

    @Test func theThresholdFollowsTheVolumeAndTheOptions() {
        let text = ServeWelcome.text(
            layout: layout, options: ServeOptions(chunk: 64 << 20, utilizationPercent: 50), virtualSize: 1 << 30, volumeSize: 1 << 30)
        #expect(text.contains("write threshold on it at 992 MiB, when 32 MiB is left"))
        #expect(text.contains("by 64 MiB (up to 1.1 GiB), then arms the next threshold"))
    }
}
