/// QEMU's older option syntax (util/qemu-option.c, "QemuOpts"), used by `--chardev`.
///
/// Unlike keyval it is flat (no dotted keys), checks every name against a fixed table of
/// typed options, takes the `id` apart, and still accepts short booleans with a warning:
/// a bare `server` means `server=on`, a bare `nowait` means `wait=off`. With an implied
/// name the first item may be a bare value (`socket,…` = `backend=socket,…`); in values
/// `,,` is a literal comma.
public struct QemuOptsParser: Sendable {
    /// The type of an option's value.
    public enum ValueType: Sendable {
        case string
        case bool
        /// An unsigned integer (`strtoull` syntax, base 0).
        case number
        /// A byte count with an optional suffix (`4K`).
        case size

        /// How `help` lists the type.
        var helpName: String {
            switch self {
            case .string: "str"
            case .bool: "bool (on/off)"
            case .number: "num"
            case .size: "size"
            }
        }
    }

    /// A checked option value.
    public enum Value: Sendable, Equatable {
        case string(String)
        case bool(Bool)
        case number(UInt64)
        case size(UInt64)
    }

    /// Parsed options: the `id`, and the other options in input order.
    public struct Options: Sendable, Equatable {
        public var id: String?
        public var items: [Item]

        public struct Item: Sendable, Equatable {
            public var name: String
            public var value: Value
        }

        /// The last value given for `name` (later options override earlier ones).
        public func value(_ name: String) -> Value? { items.last { $0.name == name }?.value }

        public func string(_ name: String) -> String? {
            if case .string(let string)? = value(name) { string } else { nil }
        }

        public func bool(_ name: String) -> Bool? {
            if case .bool(let bool)? = value(name) { bool } else { nil }
        }

        public func number(_ name: String) -> UInt64? {
            switch value(name) {
            case .number(let number)?, .size(let number)?: number
            default: nil
            }
        }

        public func contains(_ name: String) -> Bool { value(name) != nil }
    }

    public enum Result: Sendable, Equatable {
        case options(Options)
        /// A bare `help` or `?` item: print ``QemuOptsParser/helpText`` and exit with status 1.
        case helpRequested
    }

    /// The option group's name, as in `chardev options:`.
    public let groupName: String
    /// The name a bare first item stands for (`backend` for chardevs).
    public let impliedName: String?
    public let options: [String: ValueType]

    public init(groupName: String, impliedName: String?, options: [String: ValueType]) {
        self.groupName = groupName
        self.impliedName = impliedName
        self.options = options
    }

    /// The text QEMU prints for a help request (on stdout).
    public var helpText: String {
        var text = "\(groupName) options:\n"
        for name in options.keys.sorted() {
            text += "  \(name)=<\(options[name]!.helpName)>\n"
        }
        return text
    }

    /// Parses `text`. Deprecation warnings go to `reportWarning` as they are found, before
    /// any later error (QEMU prints them immediately).
    public func parse(_ text: String, reportWarning: (QAPIWarning) -> Void) throws(QAPIError) -> Result {
        let bytes = Array(text.utf8)
        // The id is looked up first, over all items, without the implied name: the first wins.
        var scanner = ItemScanner(bytes: bytes)
        var id: String?
        while id == nil, let item = scanner.next(impliedName: nil) { if item.name == "id" { id = item.value } }
        if let id, !Self.isIdentifier(id) {
            throw QAPIError("Parameter 'id' expects an identifier",
                            hint: "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.")
        }

        var items: [Options.Item] = []
        scanner = ItemScanner(bytes: bytes)
        var impliedName = impliedName
        while let item = scanner.next(impliedName: impliedName) {
            impliedName = nil
            if let warning = item.shortFormWarning { reportWarning(warning) }
            if item.isHelp { return .helpRequested }
            if item.name == "id" { continue }
            items.append(Options.Item(name: item.name, value: try check(item)))
        }
        return .options(Options(id: id, items: items))
    }

    private func check(_ item: ItemScanner.Item) throws(QAPIError) -> Value {
        guard let type = options[item.name] else { throw QAPIError("Invalid parameter '\(item.name)'") }
        switch type {
        case .string:
            return .string(item.value)
        case .bool:
            switch item.value {
            case "on", "yes", "true", "y": return .bool(true)
            case "off", "no", "false", "n": return .bool(false)
            default: throw .invalidParameterValue(item.name, expects: "'on' or 'off'")
            }
        case .number:
            switch CIntegerSyntax.parseUnsigned(item.value) {
            case .value(let number): return .number(number)
            case .outOfRange: throw QAPIError("Value '\(item.value)' is too large for parameter '\(item.name)'")
            case .malformed: throw .invalidParameterValue(item.name, expects: "a number")
            }
        case .size:
            guard let size = SizeSyntax.parse(item.value) else {
                throw QAPIError("Parameter '\(item.name)' expects a non-negative number below 2^64",
                                hint: "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.")
            }
            return .size(size)
        }
    }

    /// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.`, `_`.
    static func isIdentifier(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard let first = bytes.first, KeyvalParser.isLetter(first) else { return false }
        return bytes.dropFirst().allSatisfy {
            KeyvalParser.isLetter($0) || KeyvalParser.isDigit($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
                || $0 == UInt8(ascii: "_")
        }
    }

    /// Splits QemuOpts text into `name=value` items.
    private struct ItemScanner {
        struct Item {
            var name: String
            var value: String
            /// A bare `help` or `?`.
            var isHelp = false
            var shortFormWarning: QAPIWarning?
        }

        let bytes: [UInt8]
        var position = 0

        mutating func next(impliedName: String?) -> Item? {
            guard position < bytes.count else { return nil }
            var end = position
            while end < bytes.count, bytes[end] != UInt8(ascii: "="), bytes[end] != UInt8(ascii: ",") { end += 1 }
            let item: Item
            if end < bytes.count, bytes[end] == UInt8(ascii: "=") {
                let name = String(decoding: bytes[position..<end], as: UTF8.self)
                position = end + 1
                item = Item(name: name, value: value())
            } else if let impliedName {
                item = Item(name: impliedName, value: value())
            } else {
                item = shortFormBoolean(String(decoding: bytes[position..<end], as: UTF8.self))
                position = end
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: ",") { position += 1 }
            return item
        }

        /// A bare `name` is `name=on`, a bare `noname` is `name=off`; both are deprecated.
        private func shortFormBoolean(_ word: String) -> Item {
            if word.hasPrefix("no") {
                let name = String(word.dropFirst(2))
                return Item(name: name, value: "off", shortFormWarning: Self.warning(name: name, prefix: "no", value: "off"))
            }
            if word == "help" || word == "?" { return Item(name: word, value: "on", isHelp: true) }
            return Item(name: word, value: "on", shortFormWarning: Self.warning(name: word, prefix: "", value: "on"))
        }

        private static func warning(name: String, prefix: String, value: String) -> QAPIWarning {
            // `delay` is the odd one: its positive spelling is `nodelay`.
            let hint = name == "delay"
                ? "Please use nodelay=\(prefix.isEmpty ? "off" : "on") instead"
                : "Please use \(name)=\(value) instead"
            return QAPIWarning("short-form boolean option '\(prefix)\(name)' deprecated", hint: hint)
        }

        /// A value runs to the next single `,`; `,,` stands for a literal comma.
        private mutating func value() -> String {
            var value: [UInt8] = []
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: ",") {
                    guard position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: ",") else { break }
                    position += 1
                }
                value.append(bytes[position])
                position += 1
            }
            return String(decoding: value, as: UTF8.self)
        }
    }
}
