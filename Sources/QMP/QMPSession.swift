import JSON

/// The QMP protocol for one monitor connection, without any I/O: feed it the client's bytes,
/// ask it what to do next. It parses the input stream, answers everything the protocol
/// layer answers in QSD 7.2 (parse errors, malformed requests, capability negotiation,
/// unknown commands, out-of-band attempts) and hands well-formed commands to the daemon.
///
/// Every message the client sends yields exactly one action, in input order, so replies
/// come out in request order. (With OOB enabled, QSD's I/O thread sometimes answers an
/// `exec-oob` message before in-band messages that arrived in the same burst; it is a race,
/// and differential tests against QSD matched best with strict order. Since no QSD command
/// allows OOB, that answer is always an error anyway.)
///
/// All output is what QSD prints: members in QDict order, CRLF after each message, and the
/// `pretty=on` layout with CRLF line breaks when `pretty` is set.
public struct QMPSession: Sendable {
    public enum Action: Sendable, Hashable {
        /// Run this command and send `response(to:result:)` for it.
        case execute(QMPRequest)
        /// Send these bytes; the session already produced the reply.
        case send([UInt8])
    }

    private enum State: Sendable, Hashable {
        /// After the greeting: only `qmp_capabilities` is accepted, no events are sent.
        case negotiating
        /// After a successful `qmp_capabilities`; `outOfBand` if the client enabled "oob".
        case commandMode(outOfBand: Bool)
    }

    private static let capabilitiesCommand = "qmp_capabilities"

    private var state = State.negotiating
    private var parser = JSONStreamParser()
    private let version: JSONValue
    private let commandNames: Set<String>
    public let pretty: Bool

    /// - Parameters:
    ///   - version: what `query-version` returns, shown in the greeting.
    ///   - commandNames: the commands the daemon implements (`qmp_capabilities` is always
    ///     handled here); others get "The command X has not been found".
    ///   - pretty: the monitor's `pretty=on` option.
    public init(version: JSONValue, commandNames: Set<String>, pretty: Bool) {
        self.version = version
        self.commandNames = commandNames
        self.pretty = pretty
    }

    /// The greeting to send as soon as the client connects.
    public func greeting() -> [UInt8] {
        Self.render(["QMP": ["version": version, "capabilities": ["oob"]]], pretty: pretty)
    }

    /// Whether events may be sent: only once capabilities are negotiated.
    public var acceptsEvents: Bool {
        if case .commandMode = state { true } else { false }
    }

    /// Input received but not yet turned into actions; a caller may stop reading while it is large.
    public var bufferedByteCount: Int { parser.bufferedByteCount }

    /// Whether input received may hold another message (see `JSONStreamParser.hasInputWaiting`).
    public var hasInputWaiting: Bool { parser.hasInputWaiting }

    public mutating func receive(_ bytes: some Sequence<UInt8>) {
        parser.append(bytes: bytes)
    }

    /// The next thing to do, or `nil` until more input arrives. Call it again after each
    /// action is carried out.
    public mutating func nextAction() -> Action? {
        switch parser.next() {
        case nil: nil
        case .error(let description): .send(Self.errorReply(.generic(description), id: nil, pretty: pretty))
        case .value(let message): dispatch(message)
        }
    }

    /// The reply to a command handed out by `.execute`: `{"return": ...}` or
    /// `{"error": ...}`, with the request's `id`.
    public func response(to request: QMPRequest, result: Result<JSONValue, QMPError>) -> [UInt8] {
        Self.response(to: request, result: result, pretty: pretty)
    }

    /// The same reply without the session: it depends on the monitor's `pretty` only, so a
    /// command thread can write it while the session reads further input.
    public static func response(to request: QMPRequest, result: Result<JSONValue, QMPError>, pretty: Bool) -> [UInt8] {
        switch result {
        case .success(let value): successReply(value, id: request.id, pretty: pretty)
        case .failure(let error): errorReply(error, id: request.id, pretty: pretty)
        }
    }

    /// An event message: `{"timestamp": {...}, "event": NAME, "data": {...}}` (`data` left
    /// out when `nil`). `timestamp` is the wall clock; QEMU uses (-1, -1) if it has none.
    public static func event(
        name: String, data: JSONObject?, timestamp: (seconds: Int64, microseconds: Int64), pretty: Bool
    ) -> [UInt8] {
        var message: JSONObject = [
            "event": .string(name),
            "timestamp": ["seconds": .int(timestamp.seconds), "microseconds": .int(timestamp.microseconds)],
        ]
        if let data { message["data"] = .object(data) }
        return render(.object(message), pretty: pretty)
    }

    // MARK: - Dispatch

    /// QSD's checks, in QSD's order: the message shape (members visited in QDict order, so
    /// with several problems the same one is reported), then the command lookup, then OOB
    /// permission, then (for `qmp_capabilities`) the arguments.
    private mutating func dispatch(_ message: JSONValue) -> Action {
        guard case .object(let members) = message else {
            return .send(Self.errorReply(.generic("QMP input must be a JSON object"), id: nil, pretty: pretty))
        }
        let id = members["id"]
        let request: (command: String, outOfBand: Bool)
        switch commandMember(of: members) {
        case .failure(let error): return .send(Self.errorReply(error, id: id, pretty: pretty))
        case .success(let found): request = found
        }
        let arguments = members["arguments"]?.objectValue ?? [:]

        switch state {
        case .negotiating:
            guard request.command == Self.capabilitiesCommand else {
                return .send(Self.errorReply(.commandNotFound("Expecting capabilities negotiation with 'qmp_capabilities'"), id: id, pretty: pretty))
            }
            switch Self.requestedOutOfBand(in: arguments) {
            case .failure(let error):
                return .send(Self.errorReply(error, id: id, pretty: pretty))
            case .success(let outOfBand):
                state = .commandMode(outOfBand: outOfBand)
                return .send(Self.successReply([:], id: id, pretty: pretty))
            }
        case .commandMode:
            guard request.command == Self.capabilitiesCommand || commandNames.contains(request.command) else {
                return .send(Self.errorReply(.commandNotFound("The command \(request.command) has not been found"), id: id, pretty: pretty))
            }
            // No QSD 7.2 command has `allow-oob`.
            if request.outOfBand {
                return .send(Self.errorReply(.generic("The command \(request.command) does not support OOB"), id: id, pretty: pretty))
            }
            guard request.command != Self.capabilitiesCommand else {
                // The arguments are still checked first, as the command's unmarshalling does.
                if case .failure(let error) = Self.requestedOutOfBand(in: arguments) {
                    return .send(Self.errorReply(error, id: id, pretty: pretty))
                }
                return .send(Self.errorReply(.commandNotFound("Capabilities negotiation is already complete, command ignored"), id: id, pretty: pretty))
            }
            return .execute(QMPRequest(command: request.command, arguments: arguments, id: id))
        }
    }

    /// Validates the request's members and finds the command name. `exec-oob` is a member
    /// only once the client enabled OOB; before that it is "unexpected" like any other.
    private func commandMember(of message: JSONObject) -> Result<(command: String, outOfBand: Bool), QMPError> {
        let outOfBandEnabled = state == .commandMode(outOfBand: true)
        var found: (key: String, command: String)?
        for (key, value) in QEMUHashOrder.qdictOrder(message.members) {
            switch key {
            case _ where key == "execute" || (key == "exec-oob" && outOfBandEnabled):
                guard case .string(let command) = value else {
                    return .failure(.generic("QMP input member '\(key)' must be a string"))
                }
                if let found {
                    return .failure(.generic("QMP input member '\(key)' clashes with '\(found.key)'"))
                }
                found = (key, command)
            case "arguments":
                guard value.objectValue != nil else {
                    return .failure(.generic("QMP input member 'arguments' must be an object"))
                }
            case "id":
                continue
            default:
                return .failure(.generic("QMP input member '\(key)' is unexpected"))
            }
        }
        guard let found else { return .failure(.generic("QMP input lacks member 'execute'")) }
        return .success((found.command, found.key == "exec-oob"))
    }

    /// The arguments of `qmp_capabilities` (`enable?: ["oob"]`), checked like QAPI's input
    /// visitor does: members first, element by element, then leftover members. Returns
    /// whether OOB was requested. QSD offers "oob", so requesting it always succeeds.
    private static func requestedOutOfBand(in arguments: JSONObject) -> Result<Bool, QMPError> {
        var outOfBand = false
        if let enable = arguments["enable"] {
            guard case .array(let capabilities) = enable else {
                return .failure(.generic("Invalid parameter type for 'enable', expected: array"))
            }
            for (index, capability) in capabilities.enumerated() {
                guard case .string(let name) = capability else {
                    return .failure(.generic("Invalid parameter type for 'enable[\(index)]', expected: string"))
                }
                // QEMU names list elements 'null' in this message.
                guard name == "oob" else {
                    return .failure(.generic("Parameter 'null' does not accept value '\(name)'"))
                }
                outOfBand = true
            }
        }
        let leftovers = QEMUHashOrder.glibOrder(QEMUHashOrder.qdictOrder(arguments.members).map(\.key))
        if let unexpected = leftovers.first(where: { $0 != "enable" }) {
            return .failure(.generic("Parameter '\(unexpected)' is unexpected"))
        }
        return .success(outOfBand)
    }

    // MARK: - Output

    private static func successReply(_ value: JSONValue, id: JSONValue?, pretty: Bool) -> [UInt8] {
        var reply: JSONObject = ["return": value]
        reply["id"] = id
        return render(.object(reply), pretty: pretty)
    }

    private static func errorReply(_ error: QMPError, id: JSONValue?, pretty: Bool) -> [UInt8] {
        var reply: JSONObject = [
            "error": ["class": .string(error.errorClass.rawValue), "desc": .string(error.description)],
        ]
        reply["id"] = id
        return render(.object(reply), pretty: pretty)
    }

    private static func render(_ message: JSONValue, pretty: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        message.append(to: &bytes, format: .qmp(pretty: pretty))
        bytes.append(contentsOf: [0x0D, 0x0A])
        return bytes
    }
}
