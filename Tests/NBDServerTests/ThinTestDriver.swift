import BlockCore

/// A thin disk for the tests: a fixed virtual size on top of a smaller volume node, mapped
/// one to one. Writes past the volume's end fail with ENOSPC (from the volume node); what
/// lies past it reads as zeroes.
final class ThinTestDriver: BlockDriver {
    let volume: BlockNode
    let virtualSize: UInt64
    let driverName = "thin"
    let capabilities = BlockDriverCapabilities(requestAlignment: 1, growable: false, resizable: false)
    let exactFilename: String? = nil
    let optionsDescription = BlockOptionObject([.init("driver", .string("thin"))])
    func allocatedSize() -> UInt64? { nil }
    var children: [(role: String, node: BlockNode)] { [("file", volume)] }

    init(volume: BlockNode, virtualSize: UInt64) {
        self.volume = volume
        self.virtualSize = virtualSize
    }

    func currentSize() throws(BlockError) -> UInt64 { virtualSize }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        let stored = Int(min(UInt64(buffer.count), volume.size > offset ? volume.size - offset : 0))
        if stored > 0 { try volume.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<stored])) }
        UnsafeMutableRawBufferPointer(rebasing: buffer[stored...]).initializeMemory(as: UInt8.self, repeating: 0)
    }

    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        try volume.write(at: offset, from: buffer, flags: flags)
    }

    func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        try volume.writeZeroes(at: offset, length: length, flags: flags)
    }

    func discard(at offset: UInt64, length: UInt64) throws(BlockError) {}
    func flush() throws(BlockError) { try volume.flush() }

    func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        [BlockExtent(length: length, isHole: false, isZero: false)]
    }

    func truncate(to size: UInt64) throws(BlockError) { throw .notSupported("resize") }
    func close() {}
}
