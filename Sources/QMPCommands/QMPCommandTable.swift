import JSON
import QAPI

/// Command names and their handlers. Each handler first decodes its whole argument struct
/// (so that no argument error can follow a side effect, as in QEMU), then acts.
struct QMPCommandTable: Sendable {
    typealias Handler = @Sendable (HighWaterCommands, JSONObject) throws -> JSONValue

    private(set) var handlers: [String: Handler] = [:]

    mutating func register<Arguments: QAPIStruct & SendableMetatype>(
        _ name: String, _ body: @escaping @Sendable (HighWaterCommands, Arguments) throws -> JSONValue
    ) {
        handlers[name] = { commands, object in try body(commands, Arguments.decode(object, mode: .json)) }
    }

    /// A command whose arguments need a decoding of their own.
    mutating func register(_ name: String, _ handler: @escaping Handler) {
        handlers[name] = handler
    }
}

/// Commands without arguments still reject unexpected ones.
struct NoArguments: QAPIStruct {
    init(members: inout QAPIObjectReader) throws(QAPIError) {}
}
