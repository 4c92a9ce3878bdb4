import NIOCore

/// What an export does with a write or write-zeroes that fails with ENOSPC
/// (`__io.highwater_on-enospc`).
public enum NBDNoSpacePolicy: Sendable, Equatable {
    /// The client gets ENOSPC, as with QEMU.
    case report
    /// The request is held, neither answered nor lost, until the volume under the export
    /// grows (then it runs again), for at most `timeout` (nil: for as long as it takes);
    /// then it fails with ENOSPC. A thin-provisioning manager grows the volume meanwhile,
    /// as dm-thin queues I/O while its pool is extended.
    case hold(timeout: TimeAmount?)
}
