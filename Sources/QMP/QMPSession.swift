import JSON

/// QMP error classes (`QapiErrorClass`).
public enum QMPErrorClass: String, Sendable {
    case genericError = "GenericError"
    case commandNotFound = "CommandNotFound"
    case deviceNotActive = "DeviceNotActive"
    case deviceNotFound = "DeviceNotFound"
}

/// A QMP error reply.
public struct QMPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errorClass: QMPErrorClass
    public var description: String

    public init(errorClass: QMPErrorClass, description: String) {
        self.errorClass = errorClass
        self.description = description
    }

    public static func generic(_ description: String) -> QMPError {
        QMPError(errorClass: .genericError, description: description)
    }
}

/// A command for the daemon to run.
public struct QMPRequest: Sendable, Equatable {
    public var command: String
    public var arguments: JSONObject
    public var id: JSONValue?

    public init(command: String, arguments: JSONObject, id: JSONValue?) {
        self.command = command
        self.arguments = arguments
        self.id = id
    }
}

/// One monitor connection's protocol state (provisional minimal version).
public struct QMPSession: Sendable {
    public enum Action: Sendable, Equatable {
        case execute(QMPRequest)
        case send([UInt8])
    }

    private enum State { case negotiating, commandMode }

    private var state = State.negotiating
    private var parser = JSONStreamParser()
    private let version: JSONValue
    private let commandNames: Set<String>
    private let format: JSONFormat

    public init(version: JSONValue, commandNames: Set<String>, pretty: Bool) {
        self.version = version
        self.commandNames = commandNames
        self.format = .qmp(pretty: pretty)
    }

    public var acceptsEvents: Bool { state == .commandMode }

    public func greeting() -> [UInt8] {
        message(["QMP": ["version": version, "capabilities": ["oob"]]])
    }

    public mutating func receive(_ bytes: some Sequence<UInt8>) {
        parser.append(bytes: bytes)
    }

    public mutating func nextAction() -> Action? {
        while let item = parser.next() {
            switch item {
            case .error(let text):
                return .send(errorReply(.generic(text), id: nil))
            case .value(let value):
                return handle(value)
            }
        }
        return nil
    }

    private mutating func handle(_ value: JSONValue) -> Action {
        guard case .object(let object) = value else {
            return .send(errorReply(.generic("QMP input must be a JSON object"), id: nil))
        }
        let id = object["id"]
        for key in object.keys where !["execute", "arguments", "id"].contains(key) {
            return .send(errorReply(.generic("QMP input member '\(key)' is unexpected"), id: id))
        }
        guard let execute = object["execute"] else {
            return .send(errorReply(.generic("QMP input lacks member 'execute'"), id: id))
        }
        guard case .string(let command) = execute else {
            return .send(errorReply(.generic("QMP input member 'execute' must be a string"), id: id))
        }
        var arguments = JSONObject()
        if let given = object["arguments"] {
            guard case .object(let object) = given else {
                return .send(errorReply(.generic("QMP input member 'arguments' must be an object"), id: id))
            }
            arguments = object
        }
        switch state {
        case .negotiating:
            guard command == "qmp_capabilities" else {
                return .send(errorReply(QMPError(errorClass: .commandNotFound,
                    description: "Expecting capabilities negotiation with 'qmp_capabilities'"), id: id))
            }
            state = .commandMode
            return .send(reply(["return": [:]], id: id))
        case .commandMode:
            if command == "qmp_capabilities" {
                return .send(errorReply(QMPError(errorClass: .commandNotFound,
                    description: "Capabilities negotiation is already complete, command ignored"), id: id))
            }
            return .execute(QMPRequest(command: command, arguments: arguments, id: id))
        }
    }

    public func response(to request: QMPRequest, result: Result<JSONValue, QMPError>) -> [UInt8] {
        switch result {
        case .success(let value): reply(["return": value], id: request.id)
        case .failure(let error): errorReply(error, id: request.id)
        }
    }

    public static func event(name: String, data: JSONObject?, timestamp: (seconds: Int64, microseconds: Int64), pretty: Bool) -> [UInt8] {
        var object: JSONObject = [
            "timestamp": ["seconds": .int(timestamp.seconds), "microseconds": .int(timestamp.microseconds)],
            "event": .string(name),
        ]
        if let data { object["data"] = .object(data) }
        var bytes = JSONValue.object(object).serialized(format: .qmp(pretty: pretty))
        bytes.append(contentsOf: [0x0D, 0x0A])
        return bytes
    }

    private func errorReply(_ error: QMPError, id: JSONValue?) -> [UInt8] {
        var object: JSONObject = [:]
        if let id { object["id"] = id }
        object["error"] = ["class": .string(error.errorClass.rawValue), "desc": .string(error.description)]
        return message(object)
    }

    private func reply(_ object: JSONObject, id: JSONValue?) -> [UInt8] {
        var object = object
        if let id { object["id"] = id }
        return message(object)
    }

    private func message(_ object: JSONObject) -> [UInt8] {
        var bytes = JSONValue.object(object).serialized(format: format)
        bytes.append(contentsOf: [0x0D, 0x0A])
        return bytes
    }
}
