import NIOCore

/// The data of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`: an export name and
/// context queries (`base:allocation`, `base:`, ...).
public struct NBDMetaContextRequest: Sendable, Hashable {
    public var exportName: String
    public var queries: [String]

    public init(exportName: String, queries: [String]) {
        self.exportName = exportName
        self.queries = queries
    }

    /// Reads the queries that follow the export name (which the caller has already read, so
    /// that it can check the export first, as QEMU does). Queries longer than 4096 bytes are
    /// skipped, not errors.
    public static func readQueries(from reader: inout NBDOptionPayloadReader) throws(NBDOptionPayloadError) -> [String] {
        let count = try reader.readUInt32()
        var queries: [String] = []
        for _ in 0..<count {
            let length = Int(try reader.readUInt32())
            if length > NBDLimits.maximumStringLength {
                try reader.skip(length)
            } else {
                queries.append(try reader.readString(length: length))
            }
        }
        try reader.finish()
        return queries
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(exportName.utf8.count))
        buffer.writeString(exportName)
        buffer.writeInteger(UInt32(queries.count))
        for query in queries {
            buffer.writeInteger(UInt32(query.utf8.count))
            buffer.writeString(query)
        }
    }
}
