import NBDWire
import NIOCore

/// The protocol state of one NBD connection: fixed-newstyle negotiation with QSD 7.2's
/// answers and messages, then transmission. Events go in, actions (bytes to send, what to
/// do with the connection) come out; the caller owns the socket and the I/O.
public struct NBDConnectionStateMachine {
    enum State {
        case awaitingClientFlags
        case negotiating(Negotiation)
        case transmitting(NBDTransmissionSession)
        /// `NBD_CMD_DISC` received (or the connection is going away): no more requests.
        case disconnecting
    }

    struct Negotiation {
        var fixedNewstyle: Bool
        var noZeroes: Bool
        var structuredReplies = false
        /// The export `NBD_OPT_SET_META_CONTEXT` last selected `base:allocation` for.
        var baseAllocationExport: NBDExport?
    }

    /// What to do after an option request.
    public enum OptionAction {
        /// Send the replies and wait for the next option.
        case reply(ByteBuffer)
        /// Send the replies, then close (`NBD_OPT_ABORT`).
        case replyAndClose(ByteBuffer)
        /// Send the replies; transmission starts with the next message.
        case startTransmission(reply: ByteBuffer, session: NBDTransmissionSession)
        /// Drop the connection (nothing can be reported to the client).
        case close(reason: String)
    }

    /// What to do with a transmission request.
    public enum RequestAction {
        /// Valid: run `session.perform(request, payload:)` and send its reply.
        case execute(NBDTransmissionSession)
        /// Invalid: send this error reply right away.
        case reply(ByteBuffer)
        /// `NBD_CMD_DISC`: finish the requests in flight, then close.
        case disconnect
        /// Request after DISC: drop it.
        case ignore
    }

    private(set) var state: State = .awaitingClientFlags
    private let registry: NBDExportRegistry
    private let allocator: ByteBufferAllocator
    /// Whether clients may use several connections (not when the server allows only one).
    private let multipleConnections: Bool

    public init(registry: NBDExportRegistry, multipleConnections: Bool = true, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.registry = registry
        self.multipleConnections = multipleConnections
        self.allocator = allocator
    }

    /// The greeting to send when the connection opens.
    public func greeting() -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeNBDGreeting(flags: [.fixedNewstyle, .noZeroes])
        return buffer
    }

    /// The session once transmission started.
    public var session: NBDTransmissionSession? {
        if case .transmitting(let session) = state { return session }
        return nil
    }

    // MARK: Negotiation

    /// The client's flags: nil to go on, or a reason to close.
    public mutating func clientFlagsReceived(_ flags: NBDClientFlags) -> String? {
        guard case .awaitingClientFlags = state else { return "unexpected client flags" }
        let unknown = flags.subtracting(.known)
        if !unknown.isEmpty {
            return "Unknown client flags 0x\(String(unknown.rawValue, radix: 16)) received"
        }
        state = .negotiating(Negotiation(fixedNewstyle: flags.contains(.fixedNewstyle), noZeroes: flags.contains(.noZeroes)))
        return nil
    }

    public mutating func optionReceived(_ option: NBDOption, data: ByteBuffer) -> OptionAction {
        guard case .negotiating(var negotiation) = state else { return .close(reason: "option outside negotiation") }
        // Without fixed newstyle the client cannot understand option replies.
        guard negotiation.fixedNewstyle || option == .exportName else {
            return .close(reason: "Unsupported option \(option.rawValue) (\(option))")
        }
        var replies = allocator.buffer(capacity: 256)
        defer { if case .negotiating = state { state = .negotiating(negotiation) } }

        func reply(_ reply: NBDOptionReply) {
            reply.encode(option: option, into: &replies)
        }
        func fail(_ type: NBDOptionReplyType, _ message: String) -> OptionAction {
            reply(.error(type, message: message))
            return .reply(replies)
        }

        switch option {
        case .exportName:
            return exportName(data: data, negotiation: negotiation)

        case .abort:
            reply(.ack)
            return .replyAndClose(replies)

        case .list:
            guard data.readableBytes == 0 else {
                return fail(.errorInvalid, NBDOptionPayloadReader.unexpectedLength(option).message)
            }
            for export in registry.activeExports {
                reply(.server(name: export.name, description: export.description ?? ""))
            }
            reply(.ack)
            return .reply(replies)

        case .startTLS:
            guard data.readableBytes == 0 else {
                return fail(.errorInvalid, NBDOptionPayloadReader.unexpectedLength(option).message)
            }
            return fail(.errorPolicy, "TLS not configured")

        case .structuredReply:
            guard data.readableBytes == 0 else {
                return fail(.errorInvalid, NBDOptionPayloadReader.unexpectedLength(option).message)
            }
            if negotiation.structuredReplies {
                return fail(.errorInvalid, "structured reply already negotiated")
            }
            negotiation.structuredReplies = true
            reply(.ack)
            return .reply(replies)

        case .info, .go:
            var reader = NBDOptionPayloadReader(option: option, data: data)
            let request: NBDExportInfoRequest
            do {
                request = try NBDExportInfoRequest(from: &reader)
            } catch {
                return fail(.errorInvalid, error.message)
            }
            guard let export = registry.lookup(name: request.exportName) else {
                return fail(.errorUnknown, "export '\(Self.sanitized(request.exportName))' not present")
            }
            let wantsBlockSize = request.requestedInfo.contains(.blockSize)
            if request.requestedInfo.contains(.name) { reply(.info(.name(request.exportName))) }
            if let description = export.description { reply(.info(.description(description))) }
            // The minimum is the node's alignment only for clients that promise to honour it.
            let alignment = max(1, export.node.driver.capabilities.requestAlignment)
            let minimum = option == .info || wantsBlockSize ? alignment : 1
            reply(.info(.blockSize(minimum: minimum, preferred: max(4096, minimum), maximum: UInt32(NBDLimits.maximumPayload))))
            reply(.info(.export(size: export.node.size, flags: export.transmissionFlags(structuredReplies: negotiation.structuredReplies, multipleConnections: multipleConnections))))
            if option == .info && !wantsBlockSize && alignment > 1 {
                return fail(.errorBlockSizeRequired, "request NBD_INFO_BLOCK_SIZE to use this export")
            }
            reply(.ack)
            guard option == .go else { return .reply(replies) }
            let session = makeSession(export: export, negotiation: negotiation)
            state = .transmitting(session)
            return .startTransmission(reply: replies, session: session)

        case .listMetaContext, .setMetaContext:
            let selecting = option == .setMetaContext
            if selecting && !negotiation.structuredReplies {
                return fail(.errorInvalid, "request option '\(option)' when structured reply is not negotiated")
            }
            // A new selection replaces the previous one, even when it fails.
            if selecting { negotiation.baseAllocationExport = nil }
            var reader = NBDOptionPayloadReader(option: option, data: data)
            let export: NBDExport
            let queries: [String]
            do {
                let name = try reader.readName()
                guard let found = registry.lookup(name: name) else {
                    return fail(.errorUnknown, "export '\(Self.sanitized(name))' not present")
                }
                export = found
                queries = try NBDMetaContextRequest.readQueries(from: &reader)
            } catch {
                return fail(.errorInvalid, error.message)
            }
            let baseAllocation = queries.isEmpty
                ? !selecting
                : queries.contains { $0 == "base:allocation" || (!selecting && $0 == "base:") }
            if baseAllocation {
                reply(.metaContext(id: NBDTransmissionSession.baseAllocationContextID, name: "base:allocation"))
                if selecting { negotiation.baseAllocationExport = export }
            }
            reply(.ack)
            return .reply(replies)

        default:
            return fail(.errorUnsupported, "Unsupported option \(option.rawValue) (\(option))")
        }
    }

    private mutating func exportName(data: ByteBuffer, negotiation: Negotiation) -> OptionAction {
        guard data.readableBytes <= NBDLimits.maximumStringLength else { return .close(reason: "Bad length received") }
        guard let export = registry.lookup(name: String(buffer: data)) else { return .close(reason: "export not found") }
        var reply = allocator.buffer(capacity: 134)
        reply.writeNBDExportNameReply(size: export.node.size,
                                      flags: export.transmissionFlags(structuredReplies: negotiation.structuredReplies, multipleConnections: multipleConnections),
                                      noZeroes: negotiation.noZeroes)
        let session = makeSession(export: export, negotiation: negotiation)
        state = .transmitting(session)
        return .startTransmission(reply: reply, session: session)
    }

    private func makeSession(export: NBDExport, negotiation: Negotiation) -> NBDTransmissionSession {
        NBDTransmissionSession(export: export, structuredReplies: negotiation.structuredReplies,
                               baseAllocationSelected: negotiation.structuredReplies && negotiation.baseAllocationExport === export,
                               allocator: allocator)
    }

    /// QEMU shortens long names in messages to 80 bytes and an ellipsis.
    static func sanitized(_ name: String) -> String {
        name.utf8.count < 80 ? name : String(decoding: name.utf8.prefix(80), as: UTF8.self) + "..."
    }

    // MARK: Transmission

    public mutating func requestReceived(_ request: NBDRequest) -> RequestAction {
        switch state {
        case .transmitting(let session):
            if request.command == .disconnect {
                state = .disconnecting
                return .disconnect
            }
            if let (errno, message) = session.validate(request) {
                return .reply(session.errorReply(cookie: request.cookie, errno: errno, message: message))
            }
            return .execute(session)
        case .disconnecting:
            return .ignore
        case .awaitingClientFlags, .negotiating:
            preconditionFailure("request decoded before transmission")
        }
    }

    /// The connection is closing: later requests are dropped.
    public mutating func closing() {
        state = .disconnecting
    }
}
