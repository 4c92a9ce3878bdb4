import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `highwater watch`: follows the QMP monitors of one or more daemons and prints their
/// events and the use of their nodes, as text or as one JSON object per line.
public struct Watcher: Sendable {
    public var targets: [WatchTarget]
    public var json: Bool
    /// Period of the slow refresh of the use display; nil refreshes on events only.
    public var refreshInterval: Duration?
    /// Receives each output line (with its newline); lines never interleave.
    public var write: @Sendable (String) -> Void

    public init(targets: [WatchTarget], json: Bool, refreshInterval: Duration?, write: @escaping @Sendable (String) -> Void) {
        self.targets = targets
        self.json = json
        self.refreshInterval = refreshInterval
        self.write = write
    }

    /// Watches every target until the task is cancelled.
    public func run() async {
        let lock = Mutex(())
        let json = json
        let write = write
        let output: @Sendable (WatchRecord) -> Void = { record in
            let line = json ? WatchFormatter.json(record) : WatchFormatter.human(record)
            lock.withLock { _ in write(line) }
        }
        await withTaskGroup(of: Void.self) { group in
            for target in targets {
                group.addTask {
                    await DaemonWatcher(target: target, refreshInterval: refreshInterval, output: output).run()
                }
            }
        }
    }

    /// Watches until SIGINT (Ctrl-C) or SIGTERM, then returns.
    public func runUntilInterrupted() async {
        let task = Task { await run() }
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
        await task.value
        sources.forEach { $0.cancel() }
    }
}
