import JSON
import QMP

/// Runs QMP commands for the monitors. Commands from every monitor are executed one at a
/// time, as in QEMU's main loop; the monitor code guarantees that by calling from one thread.
public protocol QMPCommandExecutor: Sendable {
    /// Names `query-commands` lists and the session accepts.
    var commandNames: Set<String> { get }
    /// Executes one command; events it causes are emitted before it returns, except those
    /// QEMU sends after the reply (see `commandReplied`).
    func execute(_ request: QMPRequest) -> Result<JSONValue, QMPError>
    /// Called on the command thread once the reply of the last command has been queued to its
    /// monitor: events that QEMU sends after the reply go out now.
    func commandReplied()
}
