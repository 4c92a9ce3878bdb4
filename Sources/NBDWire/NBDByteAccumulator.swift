import NIOCore

/// The bytes received but not yet decoded. Decoded payloads are handed out as slices of the
/// received buffers (no copy); the accumulator keeps only its unread tail so that appending
/// never copies bytes that such slices still reference.
struct NBDByteAccumulator {
    private(set) var buffer: ByteBuffer?

    var readableBytes: Int { buffer?.readableBytes ?? 0 }

    mutating func append(_ bytes: ByteBuffer) {
        guard var current = buffer, current.readableBytes > 0 else {
            buffer = bytes
            return
        }
        buffer = nil
        if current.readerIndex > 0 {
            // Drop the consumed head: if the storage is shared with handed-out slices, the
            // copy-on-write below copies only the unread tail.
            current = current.slice()
        }
        current.writeImmutableBuffer(bytes)
        buffer = current
    }

    /// Makes room for `count` more bytes in one allocation (a large WRITE payload arriving
    /// in many reads would otherwise be regrown step by step).
    mutating func reserve(totalReadable count: Int) {
        guard var current = buffer, count > current.readableBytes else { return }
        buffer = nil
        if current.readerIndex > 0 { current = current.slice() }
        current.reserveCapacity(minimumWritableBytes: count - current.readableBytes)
        buffer = current
    }

    func peekInteger<T: FixedWidthInteger>(at offset: Int = 0, as: T.Type = T.self) -> T? {
        guard let buffer else { return nil }
        return buffer.getInteger(at: buffer.readerIndex + offset, as: T.self)
    }

    mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) -> T? {
        buffer?.readInteger(as: T.self)
    }

    mutating func readSlice(length: Int) -> ByteBuffer? {
        buffer?.readSlice(length: length)
    }

    mutating func skip(_ count: Int) {
        buffer?.moveReaderIndex(forwardBy: count)
    }

    /// Lets go of a buffer read to its end, so that only the slices handed out keep its
    /// storage alive.
    mutating func releaseIfConsumed() {
        if buffer?.readableBytes == 0 { buffer = nil }
    }
}
