import NIOCore

/// Identifies one client connection to the server and the export registry, and lets them
/// close it from any thread.
final class NBDConnectionToken: NBDExportConnection {
    let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    func close() {
        channel.close(promise: nil)
    }
}
