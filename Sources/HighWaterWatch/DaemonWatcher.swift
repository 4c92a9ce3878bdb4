import NIOCore
import NIOPosix
import QMPClient

/// Watches one daemon: connects, runs a ``WatchSession`` over the connection, and when the
/// daemon goes away (or is not there yet) tries again with exponential backoff, until the
/// task is cancelled.
struct DaemonWatcher: Sendable {
    let target: WatchTarget
    /// Period of the slow refresh; nil refreshes on events only.
    let refreshInterval: Duration?
    let output: @Sendable (WatchRecord) -> Void

    /// First delay before reconnecting, and the longest.
    static let initialBackoff = Duration.milliseconds(250)
    static let maximumBackoff = Duration.seconds(5)

    private enum Input: Sendable {
        case session(WatchSession.Input)
        case closed
    }

    func run() async {
        var delay = Self.initialBackoff
        var lastReason: String?
        while !Task.isCancelled {
            let (negotiated, reason) = await watchOnce()
            guard !Task.isCancelled else { return }
            if negotiated { delay = Self.initialBackoff }
            // A daemon that stays away is reported once, not at every attempt.
            if negotiated || reason != lastReason {
                let milliseconds = delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000
                output(WatchRecord(timestamp: .now, daemon: target.description,
                                   kind: .disconnected(reason: reason, retryMilliseconds: milliseconds)))
            }
            lastReason = negotiated ? nil : reason
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, Self.maximumBackoff)
        }
    }

    /// One connection, from connecting to its end: whether it got as far as a negotiated
    /// session, and why it ended.
    private func watchOnce() async -> (negotiated: Bool, reason: String) {
        let client: QMPClient
        do {
            client = try await QMPClient.connect(to: target.address, group: MultiThreadedEventLoopGroup.singleton, timeout: .seconds(5))
        } catch {
            if case .connectFailed(_, let reason) = error { return (false, "cannot connect: \(reason)") }
            return (false, "\(error)")
        }
        await serve(client)
        switch await client.closed() {
        case .connectionClosed where Task.isCancelled: return (true, "cancelled")
        case .connectionClosed: return (true, "connection closed by the daemon")
        case let reason: return (true, "\(reason)")
        }
    }

    /// Feeds the session with the greeting, events, replies and ticks until the connection
    /// ends or the task is cancelled.
    private func serve(_ client: QMPClient) async {
        let (inputs, continuation) = AsyncStream.makeStream(of: Input.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in client.events { continuation.yield(.session(.event(event))) }
                continuation.yield(.closed)
            }
            if let refreshInterval {
                group.addTask {
                    while (try? await Task.sleep(for: refreshInterval)) != nil {
                        continuation.yield(.session(.tick))
                    }
                }
            }
            var session = WatchSession(daemon: target.description)
            perform(.connected(client.greeting), on: &session, client: client, group: &group, replies: continuation)
            for await input in inputs {
                guard case .session(let input) = input else { break }
                perform(input, on: &session, client: client, group: &group, replies: continuation)
            }
            group.cancelAll()
            continuation.finish()
            await client.close()
        }
    }

    /// Hands one input to the session and carries out its actions: records are printed,
    /// queries run concurrently and their replies come back as inputs.
    private func perform(
        _ input: WatchSession.Input, on session: inout WatchSession, client: QMPClient,
        group: inout TaskGroup<Void>, replies: AsyncStream<Input>.Continuation
    ) {
        for action in session.handle(input, now: .now) {
            switch action {
            case .execute(let query):
                group.addTask {
                    let reply = try? await client.execute(query.command, arguments: query.arguments)
                    replies.yield(.session(.reply(query, reply)))
                }
            case .record(let record):
                output(record)
            }
        }
    }
}
