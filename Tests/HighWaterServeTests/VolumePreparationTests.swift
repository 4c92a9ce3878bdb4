import Testing
@testable import HighWaterServe

@Suite struct VolumePreparationTests {
    let mib: UInt64 = 1 << 20

    @Test func aNewDiskIsCreatedOnAVolumeOfTheInitialSize() {
        let plan = VolumePreparation.plan(existingLength: nil, volumeSize: 256 * mib)
        #expect(plan == .create(volumeSize: 256 * mib))
        #expect(plan.volumeSize == 256 * mib)
        #expect(plan.message(disk: "/d/disk.qcow2") == nil)
    }

    @Test func anEarlierRunsShorterFileIsLengthened() {
        // The serve of before the controller: the qcow2's file grew with its writes.
        let plan = VolumePreparation.plan(existingLength: 196_608, volumeSize: 256 * mib)
        #expect(plan == .grow(from: 196_608, to: 256 * mib))
        #expect(plan.volumeSize == 256 * mib)
        #expect(plan.message(disk: "/d/disk.qcow2")
            == "Using /d/disk.qcow2 from an earlier run: its file (192 KiB) is lengthened to a 256 MiB volume.")
    }

    @Test func anEarlierRunsLongerFileIsKeptAsTheVolume() {
        #expect(VolumePreparation.plan(existingLength: 256 * mib, volumeSize: 256 * mib) == .keep(size: 256 * mib))
        let plan = VolumePreparation.plan(existingLength: 3 << 30, volumeSize: 256 * mib)
        #expect(plan == .keep(size: 3 << 30))
        #expect(plan.volumeSize == 3 << 30)
        #expect(plan.message(disk: "/d/disk.qcow2") == "Using /d/disk.qcow2 from an earlier run: its file's length (3 GiB) is the volume's size.")
    }
}
