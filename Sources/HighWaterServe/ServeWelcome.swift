import ImageTools

/// The text `serve` prints once everything runs: where to connect, and what happens when
/// the disk fills its volume.
public enum ServeWelcome {
    /// - Parameters:
    ///   - virtualSize: the disk's virtual size (read from the image: an earlier run's disk
    ///     keeps its own).
    ///   - volumeSize: the volume's size at start.
    public static func text(layout: ServeLayout, options: ServeOptions, virtualSize: UInt64, volumeSize: UInt64) -> String {
        let policy = options.policy(virtualSize: virtualSize)
        let uri = layout.exportURI
        let size = ImageSize.humanReadable
        return """
            HighWater is serving a \(size(virtualSize)) thin qcow2 disk on a \(size(volumeSize)) volume (\(layout.disk)).

              NBD export '\(ServeLayout.diskNodeName)':  \(uri)
                nbdinfo '\(uri)'
                qemu-io -f raw -c 'write -P 0xab 0 1G' '\(uri)'
                nbdcopy BIG.img '\(uri)'
              QMP monitor:  \(layout.qmpSocket)
                highwater watch \(layout.qmpSocket)
                qmp-shell \(layout.qmpSocket)    (pip install qemu.qmp), or: socat - UNIX-CONNECT:\(layout.qmpSocket)

            The whole thin-provisioning loop runs in this process:
              - the disk's file is a fixed-size volume (node '\(ServeLayout.volumeNodeName)', __io.highwater_volume=on):
                writes never grow it;
              - a built-in controller arms a write threshold on it at \(size(policy.threshold(capacity: volumeSize))), when \(size(policy.watermark)) is left;
              - when writes pass it, BLOCK_WRITE_THRESHOLD fires and the controller grows the volume
                by \(size(policy.chunk)) (up to \(size(policy.maximum))), then arms the next threshold;
              - a write that finds the volume full waits for the growth instead of failing
                (__io.highwater_on-enospc=hold).
            Events and every extension are logged here (stderr); QMP clients see the events too.
            The controller has its own monitor (\(layout.controllerSocket)) and owns the classic
            threshold of '\(ServeLayout.volumeNodeName)': for thresholds of your own, use __io.highwater_set-write-threshold.
            Ctrl-C stops everything.
            """
    }
}
