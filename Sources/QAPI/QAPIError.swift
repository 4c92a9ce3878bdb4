/// A failure to accept input, carrying QEMU's exact message text.
///
/// QMP reports these as `GenericError` with `desc` = `description`; the command line prints
/// them after the option's location. A `hint` is an extra line QEMU prints below the message
/// on the command line only (e.g. the rules for identifiers); QMP never shows it.
public struct QAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public var hint: String?

    public init(_ description: String, hint: String? = nil) {
        self.description = description
        self.hint = hint
    }
}

extension QAPIError {
    /// `Parameter 'x' is missing`.
    public static func missingParameter(_ fullName: String) -> QAPIError {
        QAPIError("Parameter '\(fullName)' is missing")
    }

    /// `Parameter 'x' is unexpected`.
    public static func unexpectedParameter(_ fullName: String) -> QAPIError {
        QAPIError("Parameter '\(fullName)' is unexpected")
    }

    /// `Invalid parameter type for 'x', expected: string`.
    public static func invalidParameterType(_ name: String, expected: String) -> QAPIError {
        QAPIError("Invalid parameter type for '\(name)', expected: \(expected)")
    }

    /// `Parameter 'x' expects uint64` (QEMU's QERR_INVALID_PARAMETER_VALUE).
    public static func invalidParameterValue(_ name: String, expects: String) -> QAPIError {
        QAPIError("Parameter '\(name)' expects \(expects)")
    }

    /// `Parameter 'driver' does not accept value 'bogus'`.
    public static func invalidEnumValue(_ name: String, value: String) -> QAPIError {
        QAPIError("Parameter '\(name)' does not accept value '\(value)'")
    }
}
