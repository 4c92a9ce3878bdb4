import BlockCore
import CZlib

#if canImport(Glibc)
import Glibc
#endif

/// Decompression of compressed clusters: raw deflate through the system zlib, or zstd
/// through libzstd when the system has it (loaded on first use, so that images without
/// zstd clusters do not need it).
enum Qcow2Decompressor {
    /// Fills `output` completely from `input`; fails when the data does not decompress to
    /// at least that much. Trailing input (sector padding, neighbours' data) is ignored.
    static func decompress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, compressionType: UInt8
    ) throws(BlockError) {
        switch compressionType {
        case 0: try inflateRaw(input, into: output)
        default: try Zstd.shared.get().decompress(input, into: output)
        }
    }

    private static func inflateRaw(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(BlockError) {
        var stream = z_stream()
        // QEMU writes raw deflate streams with a 4 KiB window.
        guard inflateInit2_(&stream, -12, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .system(errno: ENOMEM, operation: "qcow2: zlib initialisation")
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        stream.next_out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = UInt32(output.count)
        let result = inflate(&stream, Z_FINISH)
        // A full output buffer is success even when the stream goes on (Z_BUF_ERROR).
        guard result == Z_STREAM_END || (result == Z_BUF_ERROR && stream.avail_out == 0), stream.avail_out == 0 else {
            throw .system(errno: EIO, operation: "qcow2: Could not decompress cluster (zlib)")
        }
    }

    /// libzstd's streaming decoder, bound at run time.
    private final class Zstd: Sendable {
        private struct InBuffer { var source: UnsafeRawPointer?; var size: Int; var position: Int }
        private struct OutBuffer { var destination: UnsafeMutableRawPointer?; var size: Int; var position: Int }

        private typealias Create = @convention(c) () -> OpaquePointer?
        private typealias Free = @convention(c) (OpaquePointer?) -> Int
        private typealias DecompressStream = @convention(c) (OpaquePointer?, UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Int
        private typealias IsError = @convention(c) (Int) -> UInt32

        private let create: Create
        private let free: Free
        private let decompressStream: DecompressStream
        private let isError: IsError

        static let shared: Result<Zstd, BlockError> = {
            guard let library = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL),
                  let create = dlsym(library, "ZSTD_createDStream"), let free = dlsym(library, "ZSTD_freeDStream"),
                  let stream = dlsym(library, "ZSTD_decompressStream"), let isError = dlsym(library, "ZSTD_isError")
            else {
                return .failure(.notSupported("qcow2: the image uses zstd compression, but libzstd (libzstd.so.1) is not available"))
            }
            return .success(Zstd(
                create: unsafeBitCast(create, to: Create.self), free: unsafeBitCast(free, to: Free.self),
                decompressStream: unsafeBitCast(stream, to: DecompressStream.self), isError: unsafeBitCast(isError, to: IsError.self)))
        }()

        private init(create: Create, free: Free, decompressStream: DecompressStream, isError: IsError) {
            self.create = create
            self.free = free
            self.decompressStream = decompressStream
            self.isError = isError
        }

        func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(BlockError) {
            guard let context = create() else { throw .system(errno: ENOMEM, operation: "qcow2: zstd initialisation") }
            defer { _ = free(context) }
            var inBuffer = InBuffer(source: input.baseAddress, size: input.count, position: 0)
            var outBuffer = OutBuffer(destination: output.baseAddress, size: output.count, position: 0)
            while outBuffer.position < outBuffer.size {
                let before = (inBuffer.position, outBuffer.position)
                let result = decompressStream(context, &outBuffer, &inBuffer)
                if isError(result) != 0 || (inBuffer.position, outBuffer.position) == before {
                    throw .system(errno: EIO, operation: "qcow2: Could not decompress cluster (zstd)")
                }
            }
        }
    }
}
