import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a monitor connection sends — greeting, replies, events — written from any thread,
/// in the order the messages were produced.
///
/// Events are produced where the I/O runs (an I/O thread, an NBD loop). Handing each to the
/// monitor's event loop costs a thread wake-up before a manager hears of a crossed threshold:
/// tens of microseconds, more when every core is busy. So a message goes straight to the
/// socket from the thread that produced it whenever nothing is queued in the channel; only
/// when the socket is full, or an earlier message still waits in the channel, does it go
/// through the loop. Both paths are taken under one lock, which is what keeps the order.
final class MonitorOutput: Sendable {
    private struct State {
        /// Our own duplicate of the connection's socket, nil once closed (or for stdio).
        var descriptor: CInt?
        /// Messages handed to the channel and not yet written by it.
        var queued = 0
    }

    private let channel: any Channel
    private let state: Mutex<State>

    /// Output on `channel`; `descriptor`, if given, is a duplicate of its socket that this
    /// object owns (closed by `close()`). Without one, everything goes through the channel.
    init(channel: any Channel, descriptor: CInt?) {
        self.channel = channel
        state = Mutex(State(descriptor: descriptor))
    }

    deinit {
        close()
    }

    /// Sends `bytes` after everything sent before.
    func send(_ bytes: [UInt8]) {
        state.withLock { state in
            var written = 0
            if state.queued == 0, let descriptor = state.descriptor {
                written = Self.writeWithoutWaiting(bytes, to: descriptor)
                if written == bytes.count { return }
            }
            // The rest waits for the socket in the channel (which also sees a broken one).
            state.queued += 1
            let channel = self.channel
            let rest = bytes[written...]
            channel.eventLoop.execute {
                let buffer = channel.allocator.buffer(bytes: rest)
                channel.writeAndFlush(buffer).whenComplete { _ in self.dequeued() }
            }
        }
    }

    /// Stops writing on the socket directly (the connection is closing).
    func close() {
        state.withLock { state in
            if let descriptor = state.descriptor { Glibc.close(descriptor) }
            state.descriptor = nil
        }
    }

    private func dequeued() {
        state.withLock { $0.queued -= 1 }
    }

    /// As many bytes as the socket takes now (0 when it is full or broken).
    private static func writeWithoutWaiting(_ bytes: [UInt8], to descriptor: CInt) -> Int {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                Glibc.send(descriptor, buffer.baseAddress! + written, buffer.count - written, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if result > 0 {
                written += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        return written
    }
}
