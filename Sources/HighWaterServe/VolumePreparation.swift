import ImageTools

/// What `serve` does to the disk's file before the daemon opens it as a volume.
///
/// The file's length is the volume's capacity. Folders from before the controller was built
/// in hold a qcow2 on a file that grew with its writes (a few hundred KiB when fresh): such
/// a file is lengthened to the initial volume size, or kept as it is when already longer,
/// so that every cluster the image uses stays inside the volume.
public enum VolumePreparation: Sendable, Equatable {
    /// No disk yet: create the qcow2 image, then lengthen its file to `volumeSize`.
    case create(volumeSize: UInt64)
    /// A disk from an earlier run on a shorter file: lengthen it.
    case grow(from: UInt64, to: UInt64)
    /// A disk from an earlier run on a file at least as long as a volume starts: keep it.
    case keep(size: UInt64)

    /// The plan for a disk file of `existingLength` bytes (nil: none yet).
    public static func plan(existingLength: UInt64?, volumeSize: UInt64) -> VolumePreparation {
        guard let existingLength else { return .create(volumeSize: volumeSize) }
        return existingLength < volumeSize ? .grow(from: existingLength, to: volumeSize) : .keep(size: existingLength)
    }

    /// The volume's size once prepared.
    public var volumeSize: UInt64 {
        switch self {
        case .create(let size), .grow(_, let size), .keep(let size): size
        }
    }

    /// What to tell the user about a disk from an earlier run (nothing for a new one).
    public func message(disk: String) -> String? {
        switch self {
        case .create:
            nil
        case .grow(let from, let to):
            "Using \(disk) from an earlier run: its file (\(ImageSize.humanReadable(from))) is lengthened to a \(ImageSize.humanReadable(to)) volume."
        case .keep(let size):
            "Using \(disk) from an earlier run: its file's length (\(ImageSize.humanReadable(size))) is the volume's size."
        }
    }
}
