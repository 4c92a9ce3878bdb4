/// A failed QMP command: what the client sees as `{"error": {"class": ..., "desc": ...}}`.
public struct QMPError: Error, Sendable, Hashable, CustomStringConvertible {
    public var errorClass: QMPErrorClass
    /// The human-readable `desc`, worded exactly as QSD words it.
    public var description: String

    public init(_ errorClass: QMPErrorClass, _ description: String) {
        self.errorClass = errorClass
        self.description = description
    }

    public static func generic(_ description: String) -> QMPError { QMPError(.genericError, description) }
    public static func commandNotFound(_ description: String) -> QMPError { QMPError(.commandNotFound, description) }
    public static func deviceNotActive(_ description: String) -> QMPError { QMPError(.deviceNotActive, description) }
    public static func deviceNotFound(_ description: String) -> QMPError { QMPError(.deviceNotFound, description) }
}
