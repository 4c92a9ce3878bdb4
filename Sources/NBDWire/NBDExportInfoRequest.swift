import NIOCore

/// The data of `NBD_OPT_INFO` and `NBD_OPT_GO`: an export name and the info types wanted.
public struct NBDExportInfoRequest: Sendable, Hashable {
    public var exportName: String
    public var requestedInfo: [NBDInfoType]

    public init(exportName: String, requestedInfo: [NBDInfoType] = []) {
        self.exportName = exportName
        self.requestedInfo = requestedInfo
    }

    /// Parses the whole option data.
    public init(from reader: inout NBDOptionPayloadReader) throws(NBDOptionPayloadError) {
        exportName = try reader.readName()
        let count = try reader.readUInt16()
        requestedInfo = []
        requestedInfo.reserveCapacity(Int(count))
        for _ in 0..<count {
            requestedInfo.append(NBDInfoType(rawValue: try reader.readUInt16()))
        }
        try reader.finish()
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(exportName.utf8.count))
        buffer.writeString(exportName)
        buffer.writeInteger(UInt16(requestedInfo.count))
        for type in requestedInfo { buffer.writeInteger(type.rawValue) }
    }
}
