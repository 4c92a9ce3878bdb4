import Synchronization

/// The last data extent found in the image file, as QEMU's block-status cache keeps it for
/// protocol nodes: reads and block status of metadata-preallocated images ask the file
/// where its holes are, and the answer is mostly the same long data extent. The driver
/// forgets it whenever it zeroes or discards part of the file; writes only turn holes
/// into data, which keeps it true.
final class Qcow2FileDataExtent: Sendable {
    private let extent = Mutex<Range<UInt64>?>(nil)

    /// Where the remembered extent ends, if it contains `offset`.
    func end(containing offset: UInt64) -> UInt64? {
        extent.withLock { extent in
            guard let extent, extent.contains(offset) else { return nil }
            return extent.upperBound
        }
    }

    func remember(_ range: Range<UInt64>) {
        extent.withLock { $0 = range }
    }

    func forget() {
        extent.withLock { $0 = nil }
    }
}
