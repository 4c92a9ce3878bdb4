import JSON

/// Reads the members of one QAPI struct (command arguments, an option, a nested object)
/// with QEMU's checks and error texts.
///
/// Read the members in the order the QAPI schema declares them — the first failing member
/// decides the error, as in QEMU — then call ``finish()``, which rejects any member that was
/// not read (`Parameter 'bogus' is unexpected`).
///
/// ```swift
/// var arguments = QAPIObjectReader(json, mode: .json)
/// let nodeName: String = try arguments.required("node-name")
/// let threshold = try arguments.required("write-threshold", as: UInt64.self)
/// try arguments.finish()
/// ```
public struct QAPIObjectReader: Sendable {
    public let object: JSONObject
    public let mode: QAPIInputMode
    /// The full path of this object, empty for the root.
    public let fullName: String
    private var visited: Set<String> = []

    /// A reader over a root object: QMP `arguments`, or a whole command-line option.
    public init(_ object: JSONObject, mode: QAPIInputMode) {
        self.init(object, mode: mode, fullName: "")
    }

    init(_ object: JSONObject, mode: QAPIInputMode, fullName: String) {
        self.object = object
        self.mode = mode
        self.fullName = fullName
    }

    /// Reads a root object with `body`, then rejects members `body` did not read. For types
    /// with more than one wire form (e.g. ``NBDServerOptions``).
    public static func read<T>(_ object: JSONObject, mode: QAPIInputMode,
                               _ body: (inout QAPIObjectReader) throws(QAPIError) -> T) throws(QAPIError) -> T {
        var reader = QAPIObjectReader(object, mode: mode)
        let result = try body(&reader)
        try reader.finish()
        return result
    }

    /// Whether member `name` is present (without reading it).
    public func contains(_ name: String) -> Bool { object[name] != nil }

    /// The member `name` as a raw input, marked as read; `Parameter '…' is missing` if absent.
    public mutating func input(_ name: String) throws(QAPIError) -> QAPIInput {
        guard let input = optionalInput(name) else { throw .missingParameter(memberName(name)) }
        return input
    }

    /// The member `name` as a raw input, marked as read; `nil` if absent.
    public mutating func optionalInput(_ name: String) -> QAPIInput? {
        guard let value = object[name] else { return nil }
        visited.insert(name)
        return QAPIInput(value: value, mode: mode, fullName: memberName(name), name: name)
    }

    /// A mandatory member.
    public mutating func required<T: QAPIDecodable>(_ name: String, as type: T.Type = T.self) throws(QAPIError) -> T {
        try T(qapi: input(name))
    }

    /// An optional member: `nil` when absent. (A JSON `null` is present, and rejected unless
    /// `T` accepts it.)
    public mutating func optional<T: QAPIDecodable>(_ name: String, as type: T.Type = T.self) throws(QAPIError) -> T? {
        guard let input = optionalInput(name) else { return nil }
        return try T(qapi: input)
    }

    /// An optional member with the value QEMU uses when it is absent.
    public mutating func optional<T: QAPIDecodable>(_ name: String, default defaultValue: T) throws(QAPIError) -> T {
        try optional(name, as: T.self) ?? defaultValue
    }

    /// A mandatory enum member given by its values (for enums without a Swift type).
    public mutating func requiredEnum(_ name: String, values: some Sequence<String>) throws(QAPIError) -> String {
        try input(name).enumValue(in: values)
    }

    /// An optional enum member given by its values.
    public mutating func optionalEnum(_ name: String, values: some Sequence<String>) throws(QAPIError) -> String? {
        try optionalInput(name)?.enumValue(in: values)
    }

    /// Rejects the first member that was not read (in input order).
    public func finish() throws(QAPIError) {
        if let unexpected = object.keys.first(where: { !visited.contains($0) }) {
            throw .unexpectedParameter(memberName(unexpected))
        }
    }

    private func memberName(_ name: String) -> String {
        fullName.isEmpty ? name : fullName + "." + name
    }
}
