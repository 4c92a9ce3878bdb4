import BlockCore
import NBDWire
import NIOCore

/// What one connection negotiated, and the request logic of the transmission phase:
/// validation (`validate`) and execution into a ready-to-send reply (`perform`).
///
/// A value type without mutable state, so that `perform` can run on any I/O thread.
public struct NBDTransmissionSession: Sendable {
    public let export: NBDExport
    public let structuredReplies: Bool
    /// `base:allocation` was selected for this export with `NBD_OPT_SET_META_CONTEXT`.
    public let baseAllocationSelected: Bool
    let allocator: ByteBufferAllocator

    /// QEMU's id for `base:allocation`.
    public static let baseAllocationContextID: UInt32 = 0
    /// At most this many extents per BLOCK_STATUS reply (1 MiB of descriptors, as QEMU).
    static let maximumExtents = 128 * 1024

    public init(export: NBDExport, structuredReplies: Bool, baseAllocationSelected: Bool,
                allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.export = export
        self.structuredReplies = structuredReplies
        self.baseAllocationSelected = baseAllocationSelected
        self.allocator = allocator
    }

    var node: BlockNode { export.node }

    // MARK: Validation

    /// Checks a request before any I/O, in QEMU's order (length limit, read-only, range,
    /// flags, type); the error values follow the spec (EPERM for read-only, ENOSPC for
    /// writes past the end) where QEMU 7.2 answers EINVAL. Nil when the request may run.
    public func validate(_ request: NBDRequest) -> (NBDErrno, String)? {
        let command = request.command
        var validFlags: NBDCommandFlags = .fua
        var writes = false
        switch command {
        case .read:
            if structuredReplies { validFlags.insert(.dontFragment) }
        case .write, .trim:
            writes = true
        case .writeZeroes:
            writes = true
            validFlags.formUnion([.noHole, .fastZero])
        case .blockStatus:
            validFlags.insert(.requestOne)
        default:
            break
        }
        if (command == .read || command == .cache) && request.length > NBDLimits.maximumPayload {
            return (.invalid, "len (\(request.length)) is larger than max len (\(NBDLimits.maximumPayload))")
        }
        if writes && !export.isWritable {
            return (.permissionDenied, "Export is read-only")
        }
        let size = node.size
        if request.offset > size || UInt64(request.length) > size - request.offset {
            let errno: NBDErrno = command == .write || command == .writeZeroes ? .noSpace : .invalid
            return (errno, "operation past EOF; From: \(request.offset), Len: \(request.length), Size: \(size)")
        }
        if !request.flags.isSubset(of: validFlags) {
            return (.invalid, "unsupported flags for command \(command) (got 0x\(String(request.flags.rawValue, radix: 16)))")
        }
        switch command {
        case .read, .write, .flush, .trim, .cache, .writeZeroes:
            return nil
        case .blockStatus:
            if request.length == 0 { return (.invalid, "need non-zero length") }
            if !baseAllocationSelected { return (.invalid, "CMD_BLOCK_STATUS not negotiated") }
            return nil
        default:
            return (.invalid, "invalid request type (\(command.rawValue)) received")
        }
    }

    // MARK: Execution

    /// Runs a validated request against the node (blocking) and returns the encoded reply.
    public func perform(_ request: NBDRequest, payload: ByteBuffer?) -> ByteBuffer {
        do throws(NBDRequestFailure) {
            return try execute(request, payload: payload)
        } catch {
            return errorReply(cookie: request.cookie, errno: error.errno, message: error.message)
        }
    }

    /// Like `perform`, except that on an export that holds writes on ENOSPC, a write or
    /// write-zeroes that finds no space is not answered: the caller holds it.
    func attempt(_ request: NBDRequest, payload: ByteBuffer?) -> NBDRequestOutcome {
        guard let stalledWrites = export.stalledWrites, request.command == .write || request.command == .writeZeroes else {
            return .reply(perform(request, payload: payload))
        }
        // Before the attempt, so that growth during it is not missed.
        let sizes = stalledWrites.volumeSizes
        do throws(NBDRequestFailure) {
            return .reply(try execute(request, payload: payload))
        } catch where error.errno == .noSpace {
            return .noSpace(volumeSizes: sizes, failure: error)
        } catch {
            return .reply(errorReply(cookie: request.cookie, errno: error.errno, message: error.message))
        }
    }

    private func execute(_ request: NBDRequest, payload: ByteBuffer?) throws(NBDRequestFailure) -> ByteBuffer {
        switch request.command {
        case .read:
            return try read(request)
        case .write:
            // The node writes straight from the received bytes.
            var failure: BlockError?
            (payload ?? ByteBuffer()).withUnsafeReadableBytes { bytes in
                do throws(BlockError) {
                    try node.write(at: request.offset, from: bytes, flags: request.flags.contains(.fua) ? .fua : [])
                } catch {
                    failure = error
                }
            }
            if let failure { throw NBDRequestFailure(failure, "writing to file failed") }
        case .writeZeroes:
            var flags: WriteFlags = []
            if request.flags.contains(.fua) { flags.insert(.fua) }
            if !request.flags.contains(.noHole) { flags.insert(.mayUnmap) }
            if request.flags.contains(.fastZero) { flags.insert(.fastZero) }
            try run("writing to file failed") { () throws(BlockError) in
                try node.writeZeroes(at: request.offset, length: UInt64(request.length), flags: flags)
            }
        case .trim:
            try run("discard failed") { () throws(BlockError) in
                try node.discard(at: request.offset, length: UInt64(request.length))
                if request.flags.contains(.fua) { try node.flush() }
            }
        case .flush:
            try run("flush failed") { () throws(BlockError) in try node.flush() }
        case .blockStatus:
            return try blockStatus(request)
        default:
            // CACHE is a prefetch hint: the page cache or the device does better than us.
            break
        }
        return successReply(cookie: request.cookie)
    }

    private func read(_ request: NBDRequest) throws(NBDRequestFailure) -> ByteBuffer {
        if request.flags.contains(.fua) {
            try run("flush failed") { () throws(BlockError) in try node.flush() }
        }
        let length = Int(request.length)
        if structuredReplies && length == 0 {
            return chunkReply(cookie: request.cookie, content: .none)
        }
        // Header and data in one buffer; the node reads straight into it.
        let headerLength = structuredReplies ? NBDLimits.chunkHeaderLength + 8 : NBDLimits.simpleReplyHeaderLength
        var reply = allocator.buffer(capacity: headerLength + length)
        if structuredReplies {
            reply.writeNBDChunkHeader(flags: .done, type: .offsetData, cookie: request.cookie, length: UInt32(8 + length))
            reply.writeInteger(request.offset)
        } else {
            reply.writeNBDSimpleReplyHeader(error: nil, cookie: request.cookie)
        }
        var failure: BlockError?
        reply.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { space in
            do throws(BlockError) {
                try node.read(at: request.offset, into: UnsafeMutableRawBufferPointer(rebasing: space[0..<length]))
            } catch {
                failure = error
            }
            return length
        }
        if let failure { throw NBDRequestFailure(failure, "reading from file failed") }
        return reply
    }

    private func blockStatus(_ request: NBDRequest) throws(NBDRequestFailure) -> ByteBuffer {
        let onlyOne = request.flags.contains(.requestOne)
        var descriptors: [NBDBlockStatusDescriptor] = []
        var offset = request.offset
        let end = request.offset + UInt64(request.length)
        collect: while offset < end {
            let extents: [BlockExtent]
            do {
                extents = try node.blockStatus(at: offset, length: end - offset)
            } catch {
                throw NBDRequestFailure(error, "can't get block status")
            }
            if extents.isEmpty { break }
            for extent in extents where extent.length > 0 {
                let length = UInt32(min(extent.length, end - offset))
                let flags = (extent.isHole ? NBDBlockStatusDescriptor.hole : 0) | (extent.isZero ? NBDBlockStatusDescriptor.zero : 0)
                if let last = descriptors.last, last.flags == flags, UInt64(last.length) + UInt64(length) <= UInt64(UInt32.max) {
                    descriptors[descriptors.count - 1].length += length
                } else {
                    if descriptors.count == Self.maximumExtents { break collect }
                    descriptors.append(NBDBlockStatusDescriptor(length: length, flags: flags))
                }
                offset += UInt64(length)
                if onlyOne || offset >= end { break collect }
            }
        }
        if descriptors.isEmpty {
            throw NBDRequestFailure(errno: .ioError, message: "can't get block status: no extent returned")
        }
        return chunkReply(cookie: request.cookie, content: .blockStatus(contextID: Self.baseAllocationContextID, extents: descriptors))
    }

    private func run(_ what: String, _ body: () throws(BlockError) -> Void) throws(NBDRequestFailure) {
        do {
            try body()
        } catch {
            throw NBDRequestFailure(error, what)
        }
    }

    // MARK: Replies

    /// A payload-free success: a simple reply, with or without structured replies (as QEMU).
    public func successReply(cookie: UInt64) -> ByteBuffer {
        var reply = allocator.buffer(capacity: NBDLimits.simpleReplyHeaderLength)
        reply.writeNBDSimpleReplyHeader(error: nil, cookie: cookie)
        return reply
    }

    /// An error: an `ERROR` chunk carrying the message with structured replies, else a
    /// simple reply with the error value.
    public func errorReply(cookie: UInt64, errno: NBDErrno, message: String) -> ByteBuffer {
        guard structuredReplies else {
            var reply = allocator.buffer(capacity: NBDLimits.simpleReplyHeaderLength)
            reply.writeNBDSimpleReplyHeader(error: errno, cookie: cookie)
            return reply
        }
        // Messages are bounded by the protocol's string limit.
        let text = message.utf8.count > NBDLimits.maximumStringLength
            ? String(decoding: message.utf8.prefix(NBDLimits.maximumStringLength), as: UTF8.self) : message
        return chunkReply(cookie: cookie, content: .error(errno, message: text))
    }

    private func chunkReply(cookie: UInt64, content: NBDReplyChunkContent) -> ByteBuffer {
        var reply = allocator.buffer(capacity: 64)
        NBDReplyChunk(flags: .done, cookie: cookie, content: content).encode(into: &reply)
        return reply
    }
}

/// What running a request gave: a reply to send, or a write that found no space on an
/// export that holds such writes.
enum NBDRequestOutcome {
    case reply(ByteBuffer)
    /// `volumeSizes` were taken before the attempt.
    case noSpace(volumeSizes: [UInt64], failure: NBDRequestFailure)
}

/// A request that failed while running: the reply's error value and message.
struct NBDRequestFailure: Error {
    var errno: NBDErrno
    var message: String

    init(errno: NBDErrno, message: String) {
        self.errno = errno
        self.message = message
    }

    /// QEMU's wording ("writing to file failed") followed by the block layer's reason.
    init(_ error: BlockError, _ what: String) {
        self.errno = NBDErrno(systemErrno: error.errno)
        self.message = "\(what): \(error)"
    }
}
