import JSON

/// `query-version`, `query-commands`, `quit`.
extension HighWaterCommands {
    static func registerControlCommands(in table: inout QMPCommandTable) {
        table.register("query-version") { (_, _: NoArguments) in version }
        table.register("query-commands") { (_, _: NoArguments) in
            .array(commandNames.sorted().map { ["name": .string($0)] })
        }
        table.register("query-qmp-schema") { (_, _: NoArguments) in schema }
        table.register("quit") { (commands, _: NoArguments) in
            commands.quit()
            return [:]
        }
    }

    /// A structurally valid introspection schema that names every command (with opaque
    /// argument and return types) and event, so that probing clients find what exists.
    static let schema: JSONValue = {
        let opaqueObject: JSONValue = ["name": "0", "meta-type": "object", "members": []]
        let any: JSONValue = ["name": "1", "meta-type": "builtin", "json-type": "value"]
        let commands = commandNames.sorted().map { name -> JSONValue in
            ["name": .string(name), "meta-type": "command", "arg-type": "0", "ret-type": "1", "allow-oob": false]
        }
        let events = ["BLOCK_WRITE_THRESHOLD", "BLOCK_EXPORT_DELETED", QMPBlockEventSink.namedThresholdEvent].map { name -> JSONValue in
            ["name": .string(name), "meta-type": "event", "arg-type": "0"]
        }
        return .array(commands + events + [opaqueObject, any])
    }()

    /// Deletes the exports first (their events precede the reply, as in qemu-storage-daemon),
    /// then asks the daemon to shut down once the reply is out.
    func quit() {
        shutDownExports()
        context.requestShutdown()
    }

    /// Deletes every export (their events in creation order) and stops the NBD server: what
    /// `quit` and a termination signal do first.
    public func shutDownExports() {
        removeAllExports()
        context.nbd.stop()
    }
}
