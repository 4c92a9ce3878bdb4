import BlockCore

#if canImport(Glibc)
import Glibc
#endif

/// Options of the `null-co` and `null-aio` drivers. nil = not given: QEMU shows given
/// options in the node's `json:{...}` filename even when they equal the default.
public struct NullOptions: Sendable, Equatable {
    /// Size in bytes, default 1 GiB.
    public var size: Int64?
    /// Whether reads return zeroes; by default they leave the buffer alone.
    public var readZeroes: Bool?
    /// Delay added to every read, write and flush.
    public var latencyNanoseconds: Int64?

    public init(size: Int64? = nil, readZeroes: Bool? = nil, latencyNanoseconds: Int64? = nil) {
        self.size = size
        self.readZeroes = readZeroes
        self.latencyNanoseconds = latencyNanoseconds
    }

    public static let defaultSize: UInt64 = 1 << 30
}

/// The `null-co` (and `null-aio`) driver: a fixed-size device that drops writes.
public final class NullDriver: BlockDriver {
    public enum Variant: String, Sendable {
        case co = "null-co"
        case aio = "null-aio"
    }

    private let options: NullOptions
    private let variant: Variant
    private let size: UInt64
    private let readZeroes: Bool
    private let latency: UInt64

    /// Fails cleanly on a negative size or latency (QSD 7.2 aborts on `size: -1`).
    public init(options: NullOptions, variant: Variant = .co) throws(BlockError) {
        if let size = options.size, size < 0 {
            throw .invalidArgument("Parameter 'size' expects a non-negative number below 2^64")
        }
        if let latency = options.latencyNanoseconds, latency < 0 {
            throw .invalidArgument("latency-ns is invalid")
        }
        self.options = options
        self.variant = variant
        self.size = options.size.map(UInt64.init) ?? NullOptions.defaultSize
        self.readZeroes = options.readZeroes ?? false
        self.latency = UInt64(options.latencyNanoseconds ?? 0)
    }

    public var driverName: String { variant.rawValue }

    public var capabilities: BlockDriverCapabilities {
        BlockDriverCapabilities(requestAlignment: 1, growable: false, resizable: false)
    }

    public func currentSize() throws(BlockError) -> UInt64 { size }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(BlockError) {
        delay()
        if readZeroes { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, flags: WriteFlags) throws(BlockError) {
        delay()
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, flags: WriteFlags) throws(BlockError) {
        delay()
    }

    public func discard(at offset: UInt64, length: UInt64) throws(BlockError) {}

    public func flush() throws(BlockError) {
        delay()
    }

    /// Nothing is allocated; it reads as zeroes only with `read-zeroes`.
    public func blockStatus(at offset: UInt64, length: UInt64) throws(BlockError) -> [BlockExtent] {
        [BlockExtent(length: length, isHole: true, isZero: readZeroes)]
    }

    public func truncate(to size: UInt64) throws(BlockError) {
        throw .notSupported("Image format driver does not support resize")
    }

    public func close() {}

    public var exactFilename: String? {
        options.size == nil && options.readZeroes == nil ? "\(variant.rawValue)://" : nil
    }

    public var optionsDescription: BlockOptionObject {
        var members: [BlockOptionObject.Member] = []
        if let readZeroes = options.readZeroes { members.append(.init("read-zeroes", .boolean(readZeroes))) }
        members.append(.init("driver", .string(driverName)))
        if let size = options.size { members.append(.init("size", .integer(size))) }
        return BlockOptionObject(members)
    }

    public func allocatedSize() -> UInt64? { 0 }

    private func delay() {
        guard latency > 0 else { return }
        var request = timespec(tv_sec: Int(latency / 1_000_000_000), tv_nsec: Int(latency % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
