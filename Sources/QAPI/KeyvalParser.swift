import JSON

/// QEMU's `KEY=VALUE,...` command-line syntax (util/keyval.c), as used by `--blockdev`,
/// `--export`, `--monitor` and `--nbd-server`.
///
/// The result is a JSON object whose leaves are all strings: dotted keys (`file.driver=…`)
/// build nested objects, and all-digit key fragments (`bitmaps.0=…`) build arrays. Typing
/// happens later, when the object is visited with ``QAPIInputMode/keyval``.
///
/// Syntax, in short:
/// - items are separated by `,`; a trailing `,` is allowed; inside a value `,,` is a literal `,`;
/// - each key fragment is a QAPI name (letter first, then letters, digits, `-`, `_`, with an
///   optional downstream `__RFQDN_` prefix) or, except for the first fragment, all digits;
///   fragments are 1 to 127 characters;
/// - with an implied key, the first item may be a bare value (no `,` escaping, no `=`);
/// - `help` or `?` as a bare item asks for help;
/// - the same key given twice: the last value wins.
public enum KeyvalParser {
    /// The outcome of parsing where help requests are permitted.
    public struct Result: Sendable, Equatable {
        public var object: JSONObject
        /// A bare `help` or `?` item was present.
        public var helpRequested: Bool
    }

    /// Parses `text`; a help request is an error (`Help is not available for this option`),
    /// as for every QSD option that uses keyval.
    public static func parse(_ text: String, impliedKey: String? = nil) throws(QAPIError) -> JSONObject {
        let result = try parseAllowingHelp(text, impliedKey: impliedKey)
        guard !result.helpRequested else { throw QAPIError("Help is not available for this option") }
        return result.object
    }

    /// Parses `text`, reporting a `help`/`?` item instead of failing on it.
    public static func parseAllowingHelp(_ text: String, impliedKey: String? = nil) throws(QAPIError) -> Result {
        var scanner = Scanner(bytes: Array(text.utf8))
        let root = Node.Branch()
        var helpRequested = false
        var impliedKey = impliedKey.map { Array($0.utf8) }
        while !scanner.atEnd {
            try scanner.parseItem(into: root, impliedKey: impliedKey, helpRequested: &helpRequested)
            impliedKey = nil
        }
        // Help is only considered once every item parsed, and arrays are only built after
        // that: an earlier syntax error wins over both.
        if helpRequested { return Result(object: JSONObject(), helpRequested: true) }
        guard case .object(let object) = try root.listified(keyPrefix: "") else {
            preconditionFailure("the root of a keyval tree is never a list: its keys start with a letter")
        }
        return Result(object: object, helpRequested: false)
    }
}

extension KeyvalParser {
    /// QEMU caps key fragments below 128 characters.
    static let maximumFragmentLength = 127

    /// The parse tree before arrays are recognised: inner nodes are ordered maps.
    fileprivate enum Node {
        case leaf(String)
        case branch(Branch)

        /// A reference type so that nested branches can be filled in place while walking a key.
        final class Branch {
            var children: [(key: String, node: Node)] = []

            func child(_ key: String) -> Node? { children.first { $0.key == key }?.node }

            func set(_ key: String, _ node: Node) {
                if let index = children.firstIndex(where: { $0.key == key }) {
                    children[index].node = node
                } else {
                    children.append((key, node))
                }
            }

            /// Converts to JSON; a branch whose keys are all indexes becomes an array.
            /// `keyPrefix` is the dotted path to this branch including a trailing `.`.
            func listified(keyPrefix: String) throws(QAPIError) -> JSONValue {
                var hasIndex = false
                var hasMember = false
                var converted: [(key: String, value: JSONValue)] = []
                for (key, node) in children {
                    if KeyvalParser.listIndex(key) != nil { hasIndex = true } else { hasMember = true }
                    switch node {
                    case .leaf(let string): converted.append((key, .string(string)))
                    case .branch(let branch): converted.append((key, try branch.listified(keyPrefix: keyPrefix + key + ".")))
                    }
                }
                if hasIndex && hasMember {
                    throw QAPIError("Parameters '\(keyPrefix)*' used inconsistently")
                }
                guard hasIndex else { return .object(JSONObject(converted)) }

                // Different spellings (`0`, `00`) may name the same index: the later one wins.
                // Indexes are checked for gaps from 0 up; one at or beyond the member count
                // necessarily leaves a gap, which is reported at its first missing index.
                var elements = [JSONValue?](repeating: nil, count: converted.count)
                var highestIndex = -1
                for (key, value) in converted {
                    let index = KeyvalParser.listIndex(key)!
                    highestIndex = max(highestIndex, index)
                    if index < elements.count { elements[index] = value }
                }
                var list: [JSONValue] = []
                for index in 0..<min(elements.count + 1, highestIndex + 1) {
                    guard index < elements.count, let element = elements[index] else {
                        throw QAPIError("Parameter '\(keyPrefix)\(index)' missing")
                    }
                    list.append(element)
                }
                return .array(list)
            }
        }
    }

    /// The list index an all-digit key denotes (capped like QEMU's at `Int32.max`), or `nil`.
    static func listIndex(_ key: String) -> Int? {
        let digits = Array(key.utf8)
        guard !digits.isEmpty, digits.allSatisfy(isDigit) else { return nil }
        return cappedIndex(digits[...])
    }

    static func cappedIndex(_ digits: ArraySlice<UInt8>) -> Int {
        var value = 0
        for digit in digits {
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
            if value >= Int(Int32.max) { return Int(Int32.max) }
        }
        return value
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// The length of the QAPI name at the start of `bytes` (0 if there is none).
    /// Accepts QEMU's downstream extension prefix `__RFQDN_`.
    static func qapiNameLength(_ bytes: ArraySlice<UInt8>) -> Int {
        var position = bytes.startIndex
        func at(_ index: Int) -> UInt8? { index < bytes.endIndex ? bytes[index] : nil }
        if at(position) == UInt8(ascii: "_") {
            guard at(position + 1) == UInt8(ascii: "_") else { return 0 }
            position += 2
            while let byte = at(position), isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") {
                position += 1
            }
            guard at(position) == UInt8(ascii: "_") else { return 0 }
            position += 1
        }
        guard let first = at(position), isLetter(first) else { return 0 }
        position += 1
        while let byte = at(position), isLetter(byte) || isDigit(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") {
            position += 1
        }
        return position - bytes.startIndex
    }

    fileprivate struct Scanner {
        let bytes: [UInt8]
        var position = 0

        var atEnd: Bool { position >= bytes.count }

        private func text(_ slice: ArraySlice<UInt8>) -> String { String(decoding: slice, as: UTF8.self) }

        /// Parses one item (`key=value`, an implied value, or a help request) and the comma
        /// that ends it.
        mutating func parseItem(into root: Node.Branch, impliedKey: [UInt8]?, helpRequested: inout Bool) throws(QAPIError) {
            let start = position
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "="), bytes[end] != UInt8(ascii: ",") { end += 1 }
            let isBare = end > start && (end == bytes.count || bytes[end] != UInt8(ascii: "="))
            if isBare {
                let word = bytes[start..<end]
                if word.elementsEqual("help".utf8) || word.elementsEqual("?".utf8) {
                    helpRequested = true
                    position = end
                    skipComma()
                    return
                }
                if let impliedKey {
                    // The implied key is known to be valid; its value runs to the first `,`
                    // or `=` and has no escapes.
                    root.set(String(decoding: impliedKey, as: UTF8.self), .leaf(text(word)))
                    position = end
                    skipComma()
                    return
                }
            }
            let (parent, lastFragment, keyEnd) = try parseKey(from: start, end: end, into: root)
            guard keyEnd < bytes.count, bytes[keyEnd] == UInt8(ascii: "=") else {
                throw QAPIError("Expected '=' after parameter '\(text(bytes[start..<keyEnd]))'")
            }
            position = keyEnd + 1
            let value = parseValue()
            try setLeaf(value, named: lastFragment, in: parent, key: text(bytes[start..<end]))
        }

        /// Walks the dotted key in `bytes[start..<end]`, creating intermediate objects.
        /// Returns the object the last fragment belongs to, that fragment, and where the key
        /// stopped (at `end` when well formed).
        private func parseKey(from start: Int, end: Int, into root: Node.Branch) throws(QAPIError) -> (Node.Branch, String, Int) {
            var current = root
            var previous: String?
            var fragmentStart = start
            while true {
                var length = 0
                if fragmentStart != start {
                    while fragmentStart + length < end, isDigit(bytes[fragmentStart + length]) { length += 1 }
                }
                if length == 0 {
                    length = qapiNameLength(bytes[fragmentStart..<end])
                }
                let fragmentEnd = fragmentStart + length
                if length == 0 || (fragmentEnd < end && bytes[fragmentEnd] != UInt8(ascii: ".")) {
                    throw QAPIError("Invalid parameter '\(text(bytes[start..<end]))'")
                }
                if length > maximumFragmentLength {
                    let isWholeKey = fragmentStart == start && fragmentEnd == end
                    throw QAPIError("Parameter\(isWholeKey ? "" : " fragment") '\(text(bytes[fragmentStart..<fragmentEnd]))' is too long")
                }
                if let previous {
                    // The previous fragment names an object: the one this fragment lives in.
                    current = try branch(named: previous, in: current, keyPrefix: text(bytes[start..<fragmentStart - 1]))
                }
                previous = text(bytes[fragmentStart..<fragmentEnd])
                guard fragmentEnd < end, bytes[fragmentEnd] == UInt8(ascii: ".") else {
                    return (current, previous!, fragmentEnd)
                }
                fragmentStart = fragmentEnd + 1
            }
        }

        /// The object stored as `name` in `parent`, created if absent. `keyPrefix` (the key
        /// text up to `name`) names the clash if `name` already holds a string.
        private func branch(named name: String, in parent: Node.Branch, keyPrefix: String) throws(QAPIError) -> Node.Branch {
            switch parent.child(name) {
            case .branch(let existing):
                return existing
            case .leaf:
                throw QAPIError("Parameters '\(keyPrefix).*' used inconsistently")
            case nil:
                let branch = Node.Branch()
                parent.set(name, .branch(branch))
                return branch
            }
        }

        /// Stores the string `value` as `name` in `parent`; a later value for the same key wins.
        private func setLeaf(_ value: String, named name: String, in parent: Node.Branch, key: String) throws(QAPIError) {
            if case .branch = parent.child(name) {
                throw QAPIError("Parameters '\(key).*' used inconsistently")
            }
            parent.set(name, .leaf(value))
        }

        /// A value runs to the next single `,`; `,,` stands for a literal comma.
        private mutating func parseValue() -> String {
            var value: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: ",") {
                    position += 1
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ",") else { break }
                }
                value.append(bytes[position])
                position += 1
            }
            return String(decoding: value, as: UTF8.self)
        }

        private mutating func skipComma() {
            if position < bytes.count, bytes[position] == UInt8(ascii: ",") { position += 1 }
        }
    }
}
