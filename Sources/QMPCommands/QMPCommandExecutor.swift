import JSON
import QMP

/// Runs QMP commands for the monitors. Commands from every monitor are executed one at a
/// time, as in QEMU's main loop; the monitor code guarantees that by calling from one thread.
public protocol QMPCommandExecutor: Sendable {
    /// Names `query-commands` lists and the session accepts.
    var commandNames: Set<String> { get }
    /// Executes one command; events it causes are emitted before it returns.
    func execute(_ request: QMPRequest) -> Result<JSONValue, QMPError>
}
