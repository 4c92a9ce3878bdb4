/// The `class` of a QMP error reply (QAPI's `QapiErrorClass`). QSD 7.2 reports almost
/// everything as `GenericError`; see qmp.md §3.1 for where the others occur.
public enum QMPErrorClass: String, Sendable, Hashable, CaseIterable {
    case genericError = "GenericError"
    case commandNotFound = "CommandNotFound"
    case deviceNotActive = "DeviceNotActive"
    case deviceNotFound = "DeviceNotFound"
}
