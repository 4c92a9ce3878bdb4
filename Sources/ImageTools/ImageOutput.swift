import JSON

/// qemu-img's two output styles for structured data.
enum ImageOutput {
    /// Pretty JSON as QEMU prints a QObject: QDict member order, four-space indents, newline.
    static func json(_ value: JSONValue) -> String {
        String(decoding: value.serialized(format: JSONFormat(pretty: true, keyOrder: .qemu)), as: UTF8.self) + "\n"
    }

    /// The human dump of a QObject (`Format specific information:`): one `key: value` line
    /// per member in QDict order, dashes in keys shown as spaces, nested objects and lists
    /// on their own lines, indented four spaces per level.
    static func dump(_ value: JSONValue, indentation: Int) -> String {
        let indent = String(repeating: " ", count: indentation * 4)
        switch value {
        case .object(let object):
            return QEMUHashOrder.qdictOrder(object.members).map { member in
                let key = String(member.key.map { $0 == "-" ? " " : $0 })
                return indent + key + ":" + nested(member.value, indentation: indentation)
            }.joined()
        case .array(let elements):
            return elements.enumerated().map { index, element in
                indent + "[\(index)]:" + nested(element, indentation: indentation)
            }.joined()
        default:
            return scalar(value)
        }
    }

    private static func nested(_ value: JSONValue, indentation: Int) -> String {
        switch value {
        case .object, .array: "\n" + dump(value, indentation: indentation + 1)
        default: " " + scalar(value) + "\n"
        }
    }

    private static func scalar(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): text
        case .bool(let flag): flag ? "true" : "false"
        case .int(let number): String(number)
        case .uint(let number): String(number)
        case .double(let number): cFormat("%.17g", number)
        case .null: "null"
        case .object, .array: ""
        }
    }
}
