import NBDWire
import NIOCore

/// A request handed over to I/O, with the way back to its connection (`deliver`, from any
/// thread). On an export that holds writes on ENOSPC, a write that finds no space is held
/// with the export's `NBDStalledWrites` instead of being answered, and delivered once a
/// retry succeeds or it has waited too long.
struct NBDRequestIO: Sendable {
    let request: NBDRequest
    let payload: ByteBuffer?
    let session: NBDTransmissionSession
    /// The data it reads or writes (the connection's in-flight budget).
    let bytes: Int
    let connection: NBDConnectionToken
    let server: NBDServer
    /// The connection's loop: it runs the held writes' ticker.
    let eventLoop: any EventLoop
    let deliver: @Sendable (NBDCompletion) -> Void

    /// The first attempt, on an I/O thread; a `sampled` request reports its service time.
    func run(sampled: Bool) {
        let timer = NBDServiceTimer(events: server.blockEvents)
        let outcome = session.attempt(request, payload: payload)
        let serviceTime = timer.finish()
        switch outcome {
        case .reply(let reply):
            deliver(NBDCompletion(reply: reply, bytes: bytes, serviceTime: sampled ? serviceTime : nil))
        case .noSpace(let sizes, let failure):
            hold(volumeSizes: sizes, failure: failure)
        }
    }

    /// Holds a write that found no space (its attempt began when the volumes had `volumeSizes`).
    func hold(volumeSizes: [UInt64], failure: NBDRequestFailure) {
        let export = session.export
        guard let stalledWrites = export.stalledWrites else {
            preconditionFailure("only exports that hold writes report a write without space")
        }
        let server = server
        stalledWrites.hold(
            NBDHeldWrite(
                owner: ObjectIdentifier(connection), volumeSizes: volumeSizes,
                retry: { retry() },
                fail: {
                    let reply = session.errorReply(cookie: request.cookie, errno: failure.errno, message: failure.message)
                    deliver(NBDCompletion(reply: reply, bytes: bytes))
                },
                reportStall: { server.reportWriteStall(export) }),
            eventLoop: eventLoop, executor: server.executor)
    }

    /// Runs a held write again; false when it still finds no space.
    private func retry() -> Bool {
        // The write of a connection that closed meanwhile is dropped.
        guard connection.channel.isActive else { return true }
        switch session.attempt(request, payload: payload) {
        case .reply(let reply):
            deliver(NBDCompletion(reply: reply, bytes: bytes))
            return true
        case .noSpace:
            return false
        }
    }
}
