import JSON

/// `query-version`, `query-commands`, `quit`.
extension HighWaterCommands {
    static func registerControlCommands(in table: inout QMPCommandTable) {
        table.register("query-version") { (_, _: NoArguments) in version }
        table.register("query-commands") { (_, _: NoArguments) in
            .array(commandNames.sorted().map { ["name": .string($0)] })
        }
        table.register("quit") { (commands, _: NoArguments) in
            commands.quit()
            return [:]
        }
    }

    /// Deletes the exports first (their events precede the reply, as in qemu-storage-daemon),
    /// then asks the daemon to shut down once the reply is out.
    func quit() {
        context.exports.removeAll()
        context.nbd.stop()
        context.requestShutdown()
    }
}
