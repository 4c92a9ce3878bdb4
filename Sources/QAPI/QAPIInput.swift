import JSON

/// How scalar values are typed while visiting.
public enum QAPIInputMode: Sendable, Equatable {
    /// QMP arguments and the command line's `{...}` form: JSON types must match exactly.
    case json
    /// The command line's `key=value` form (``KeyvalParser``): every scalar is a string,
    /// converted to the type the member expects.
    case keyval
}

/// One value being visited: the value, where it sits (for QEMU's error texts), and the mode.
///
/// QEMU names a value two ways in its messages: most use the full path (`addr.path`,
/// `bitmaps[0]` in JSON, `bitmaps.0` in keyval), but enum values, alternates and the narrow
/// integer types use only the member's own name, and `null` for list elements.
public struct QAPIInput: Sendable {
    public let value: JSONValue
    public let mode: QAPIInputMode
    /// The full path of the value, empty for the root.
    public let fullName: String
    /// The member's own name, `null` for list elements (and the root).
    public let name: String

    /// The root of a visit (command arguments, or a whole command-line option).
    public init(root value: JSONValue, mode: QAPIInputMode) {
        self.init(value: value, mode: mode, fullName: "", name: "null")
    }

    init(value: JSONValue, mode: QAPIInputMode, fullName: String, name: String) {
        self.value = value
        self.mode = mode
        self.fullName = fullName
        self.name = name
    }

    /// Decodes the value as `T`.
    public func decode<T: QAPIDecodable>(as type: T.Type = T.self) throws(QAPIError) -> T {
        try T(qapi: self)
    }

    // MARK: Scalars

    /// A QAPI `str`.
    public func string() throws(QAPIError) -> String {
        switch mode {
        case .json:
            guard case .string(let string) = value else { throw invalidType(expected: "string") }
            return string
        case .keyval:
            return try keyvalString()
        }
    }

    /// A QAPI `bool`; keyval accepts `on/off`, `yes/no`, `true/false`, `y/n`.
    public func bool() throws(QAPIError) -> Bool {
        switch mode {
        case .json:
            guard case .bool(let bool) = value else { throw invalidType(expected: "boolean") }
            return bool
        case .keyval:
            switch try keyvalString() {
            case "on", "yes", "true", "y": return true
            case "off", "no", "false", "n": return false
            default: throw .invalidParameterValue(fullName, expects: "'on' or 'off'")
            }
        }
    }

    /// A QAPI `int` (signed 64-bit).
    public func int64() throws(QAPIError) -> Int64 {
        switch mode {
        case .json:
            guard case .int(let int) = value else { throw invalidType(expected: "integer") }
            return int
        case .keyval:
            guard let int = CIntegerSyntax.int64(try keyvalString()) else {
                throw .invalidParameterValue(fullName, expects: "integer")
            }
            return int
        }
    }

    /// A QAPI `uint64`. Negative JSON integers are accepted and wrap around, as in QEMU
    /// (kept for backward compatibility): `-1` is 2^64-1.
    public func uint64() throws(QAPIError) -> UInt64 {
        switch mode {
        case .json:
            switch value {
            case .int(let int): return UInt64(bitPattern: int)
            case .uint(let uint): return uint
            default: throw .invalidParameterValue(fullName, expects: "uint64")
            }
        case .keyval:
            guard let uint = CIntegerSyntax.uint64(try keyvalString()) else {
                throw .invalidParameterValue(fullName, expects: "integer")
            }
            return uint
        }
    }

    /// A QAPI `size` (a byte count): `uint64` in JSON; in keyval also with a suffix
    /// such as `4K` or `1.5M`.
    public func size() throws(QAPIError) -> UInt64 {
        guard mode == .keyval else { return try uint64() }
        guard let size = SizeSyntax.parse(try keyvalString()) else {
            throw .invalidParameterValue(fullName, expects: "size")
        }
        return size
    }

    /// A narrow signed integer (`int8`…`int32`): read as `int`, then range checked.
    /// `cName` is QEMU's name for the type in the message, e.g. `int32_t`.
    public func signed<T: FixedWidthInteger & SignedInteger>(_ type: T.Type, cName: String) throws(QAPIError) -> T {
        guard let narrow = T(exactly: try int64()) else { throw .invalidParameterValue(name, expects: cName) }
        return narrow
    }

    /// A narrow unsigned integer (`uint8`…`uint32`): read as `uint64`, then range checked.
    /// `cName` is QEMU's name for the type in the message, e.g. `uint32_t`.
    public func unsigned<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, cName: String) throws(QAPIError) -> T {
        guard let narrow = T(exactly: try uint64()) else { throw .invalidParameterValue(name, expects: cName) }
        return narrow
    }

    /// A value of the enum whose values are `values`.
    public func enumValue(in values: some Sequence<String>) throws(QAPIError) -> String {
        let string = try string()
        guard values.contains(string) else { throw .invalidEnumValue(name, value: string) }
        return string
    }

    // MARK: Containers

    /// A QAPI struct or union: a reader over its members. Call ``QAPIObjectReader/finish()``
    /// after reading them.
    public func object() throws(QAPIError) -> QAPIObjectReader {
        guard case .object(let object) = value else { throw invalidType(expected: "object") }
        return QAPIObjectReader(object, mode: mode, fullName: fullName)
    }

    /// A QAPI list: one input per element.
    public func list() throws(QAPIError) -> [QAPIInput] {
        guard case .array(let elements) = value else { throw invalidType(expected: "array") }
        return elements.enumerated().map { index, element in
            let suffix = mode == .keyval ? ".\(index)" : "[\(index)]"
            return QAPIInput(value: element, mode: mode, fullName: fullName + suffix, name: "null")
        }
    }

    // MARK: Errors

    /// `Invalid parameter type for '<full name>', expected: <expected>`.
    public func invalidType(expected: String) -> QAPIError {
        .invalidParameterType(fullName, expected: expected)
    }

    /// The error for a value matching none of an alternate's branches, e.g.
    /// `Invalid parameter type for 'file', expected: BlockdevRef` (QEMU uses the own name here).
    public func invalidAlternate(_ alternateName: String) -> QAPIError {
        .invalidParameterType(name, expected: alternateName)
    }

    /// In keyval input every scalar is a string; an object or list where a scalar is expected
    /// means the user wrote `key.sub=…` for a scalar member.
    private func keyvalString() throws(QAPIError) -> String {
        switch value {
        case .string(let string): return string
        case .object, .array: throw QAPIError("Parameters '\(fullName).*' are unexpected")
        default: throw QAPIError("Internal error: parameter \(fullName) invalid")
        }
    }
}
