import JSON

/// A well-formed command the daemon has to run, from a connection in command mode.
public struct QMPRequest: Sendable, Hashable {
    public var command: String
    /// The `arguments` member, `{}` when the client sent none. Validating them (types,
    /// missing and unexpected members) is the command's job.
    public var arguments: JSONObject
    /// The client's `id`, any JSON value (`.null` if it sent `"id": null`), echoed in the reply.
    public var id: JSONValue?

    public init(command: String, arguments: JSONObject = [:], id: JSONValue? = nil) {
        self.command = command
        self.arguments = arguments
        self.id = id
    }
}
