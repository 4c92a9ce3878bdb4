import BlockCore

#if canImport(Glibc)
import Glibc
#endif

/// The lock-free part of a qcow2 node's I/O: reads of host data, compressed clusters and
/// the backing node. Every read stays inside the file: what lies past its end reads as zeroes.
struct Qcow2DataSource: Sendable {
    let file: BlockNode
    let backing: BlockNode?
    let geometry: Qcow2Geometry
    let fileDataExtent = Qcow2FileDataExtent()

    /// Reads host bytes; the part past the end of the file reads as zeroes.
    func readHost(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        try Self.readClamped(file, at: offset, into: buffer)
    }

    func readHost(at offset: UInt64, count: Int) throws(BlockError) -> [UInt8] {
        try Self.read(file, at: offset, count: count)
    }

    /// Reads bytes of a node; the part past its end reads as zeroes.
    static func read(_ node: BlockNode, at offset: UInt64, count: Int) throws(BlockError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withMutableBytes { (buffer: UnsafeMutableRawBufferPointer) throws(BlockError) in
            try readClamped(node, at: offset, into: buffer)
        }
        return bytes
    }

    func writeHost(at offset: UInt64, _ bytes: [UInt8]) throws(BlockError) {
        var bytes = bytes
        try bytes.withMutableBytes { (buffer: UnsafeMutableRawBufferPointer) throws(BlockError) in
            try file.write(at: offset, from: UnsafeRawBufferPointer(buffer))
        }
    }

    /// What an unallocated range reads: the backing node's data up to its end, then zeroes.
    func readUnallocated(at guestOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        guard let backing else {
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            return
        }
        try Self.readClamped(backing, at: guestOffset, into: buffer)
    }

    /// Reads part of a compressed cluster: decompresses the whole cluster, copies the part.
    func readCompressed(offset: UInt64, sectors: UInt64, from start: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        let compressedLength = Int(sectors * 512 - (offset & 511))
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: compressedLength, alignment: 16)
        defer { input.deallocate() }
        try readHost(at: offset, into: input)
        if start == 0 && buffer.count == Int(geometry.clusterSize) {
            return try Qcow2Decompressor.decompress(UnsafeRawBufferPointer(input), into: buffer, compressionType: geometry.compressionType)
        }
        let cluster = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(geometry.clusterSize), alignment: 16)
        defer { cluster.deallocate() }
        try Qcow2Decompressor.decompress(UnsafeRawBufferPointer(input), into: cluster, compressionType: geometry.compressionType)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: cluster[Int(start)..<Int(start) + buffer.count]))
    }

    /// Reads part of one guest cluster as its L2 entry describes it (the copy-on-write source).
    func readCluster(_ state: Qcow2ClusterState, guestCluster: UInt64, from start: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        switch state {
        case .normal(let host, _):
            try readHost(at: host + start, into: buffer)
        case .zeroPlain, .zeroAllocated:
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
        case .unallocated:
            try readUnallocated(at: guestCluster << UInt64(geometry.clusterBits) + start, into: buffer)
        case .compressed(let offset, let sectors):
            try readCompressed(offset: offset, sectors: sectors, from: start, into: buffer)
        }
    }

    /// Whether the backing chain is known to read as zeroes over a guest range without
    /// reading data, in one extent (QEMU's quick zero test: zero clusters, unallocated
    /// ones, the part past a backing file's end).
    func backingIsKnownZero(at guestOffset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        guard let backing, guestOffset < backing.size else { return true }
        // Straddling the backing file's end: two kinds of zeroes, not one extent.
        guard guestOffset + length <= backing.size else { return false }
        guard let first = try backing.blockStatus(at: guestOffset, length: length).first else { return false }
        return first.length >= length && first.isHole && first.isZero
    }

    /// Whether the backing chain reads as zeroes over a guest range, as block status tells
    /// (QEMU's zero test for partial write-zeroes).
    func backingReadsAsZeroes(at guestOffset: UInt64, length: UInt64) throws(BlockError) -> Bool {
        guard let backing, guestOffset < backing.size else { return true }
        let end = min(guestOffset + length, backing.size)
        var position = guestOffset
        while position < end {
            let extents = try backing.blockStatus(at: position, length: end - position)
            guard !extents.isEmpty else { return false }
            for extent in extents {
                guard extent.isZero else { return false }
                position += extent.length
            }
        }
        return true
    }

    private static func readClamped(_ node: BlockNode, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        var size = node.size
        if offset + UInt64(buffer.count) > size { size = try node.refreshSize() }
        let available = offset < size ? Int(min(UInt64(buffer.count), size - offset)) : 0
        if available > 0 {
            try node.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<available]))
        }
        if available < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[available...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeMutableBytes` for a body that throws `BlockError`.
    mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws(BlockError) -> R) throws(BlockError) -> R {
        let result = withUnsafeMutableBytes { buffer in
            Result { () throws(BlockError) -> R in try body(buffer) }
        }
        return try result.get()
    }
}
