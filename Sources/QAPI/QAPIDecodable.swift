import JSON

/// A type that can be read from a visited QAPI value, in either input mode.
public protocol QAPIDecodable {
    init(qapi input: QAPIInput) throws(QAPIError)
}

/// A QAPI struct (or flat union) read member by member.
///
/// Conforming types implement ``init(members:)`` reading their members in schema order; the
/// type check for "is an object" and the final check for unexpected members come for free.
public protocol QAPIStruct: QAPIDecodable {
    init(members: inout QAPIObjectReader) throws(QAPIError)
}

extension QAPIStruct {
    public init(qapi input: QAPIInput) throws(QAPIError) {
        var members = try input.object()
        self = try Self(members: &members)
        try members.finish()
    }

    /// Reads a whole root object, e.g. QMP arguments or a parsed command-line option.
    public static func decode(_ object: JSONObject, mode: QAPIInputMode) throws(QAPIError) -> Self {
        try Self(qapi: QAPIInput(root: .object(object), mode: mode))
    }
}

/// A QAPI enum backed by a Swift enum whose raw values are QEMU's spellings.
public protocol QAPIEnum: QAPIDecodable, RawRepresentable, CaseIterable where RawValue == String {}

extension QAPIEnum {
    public init(qapi input: QAPIInput) throws(QAPIError) {
        let string = try input.string()
        guard let value = Self(rawValue: string) else { throw .invalidEnumValue(input.name, value: string) }
        self = value
    }
}

extension String: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.string() }
}

extension Bool: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.bool() }
}

/// QAPI `int`.
extension Int64: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.int64() }
}

/// QAPI `uint64`.
extension UInt64: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.uint64() }
}

extension Int32: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.signed(Int32.self, cName: "int32_t") }
}

extension Int16: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.signed(Int16.self, cName: "int16_t") }
}

extension Int8: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.signed(Int8.self, cName: "int8_t") }
}

extension UInt32: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.unsigned(UInt32.self, cName: "uint32_t") }
}

extension UInt16: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.unsigned(UInt16.self, cName: "uint16_t") }
}

extension UInt8: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = try input.unsigned(UInt8.self, cName: "uint8_t") }
}

/// QAPI `size`: a byte count, which keyval input may write with a suffix (`4K`).
public struct QAPISize: QAPIDecodable, Sendable, Equatable {
    public var bytes: UInt64
    public init(bytes: UInt64) { self.bytes = bytes }
    public init(qapi input: QAPIInput) throws(QAPIError) { bytes = try input.size() }
}

/// QAPI `any`: the value as given.
extension JSONValue: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) { self = input.value }
}

/// A QAPI list.
extension Array: QAPIDecodable where Element: QAPIDecodable {
    public init(qapi input: QAPIInput) throws(QAPIError) {
        var elements: [Element] = []
        for element in try input.list() { elements.append(try Element(qapi: element)) }
        self = elements
    }
}
