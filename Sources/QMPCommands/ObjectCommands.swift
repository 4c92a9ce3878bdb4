import JSON
import QAPI

/// `object-add` and `object-del`: only `iothread` objects are accepted (HighWater runs I/O on a
/// thread pool, so they need no behaviour), so that command lines that create them work.
extension HighWaterCommands {
    static func registerObjectCommands(in table: inout QMPCommandTable) {
        table.register("object-add") { (commands, options: ObjectOptions) in
            try commands.addObject(options)
            return [:]
        }
        table.register("object-del") { (commands, arguments: ObjectDelArguments) in
            guard commands.objects.withLock({ $0.remove(arguments.id) }) != nil else {
                throw QAPIError("object '\(arguments.id)' not found")
            }
            return [:]
        }
    }

    func addObject(_ options: ObjectOptions) throws {
        guard objects.withLock({ $0.insert(options.id).inserted }) else {
            throw QAPIError("attempt to add duplicate property '\(options.id)' to object (type 'container')")
        }
    }
}

/// QAPI `ObjectOptions` as far as HighWater knows it: the `iothread` properties are accepted.
struct ObjectOptions: QAPIStruct {
    let id: String

    init(members: inout QAPIObjectReader) throws(QAPIError) {
        let type: String = try members.required("qom-type")
        id = try members.required("id")
        guard type == "iothread" else { throw QAPIError("Object type '\(type)' is not supported by HighWater") }
        for property in ["poll-max-ns", "poll-grow", "poll-shrink", "aio-max-batch", "thread-pool-min", "thread-pool-max"] {
            _ = try members.optional(property, as: Int64.self)
        }
    }
}

private struct ObjectDelArguments: QAPIStruct {
    let id: String
    init(members: inout QAPIObjectReader) throws(QAPIError) {
        id = try members.required("id")
    }
}
