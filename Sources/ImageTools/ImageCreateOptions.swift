import QAPI

/// The `-o` options of `qemu-img create` for one format (parsed by QAPI's QemuOpts parser:
/// typed values, unknown keys refused, `,,` for a comma), plus what was given outside `-o`
/// (size, `-b`, `-F`). Renders the option part of the `Formatting '...'` line.
struct ImageCreateOptions {
    struct Descriptor {
        let name: String
        let type: QemuOptsParser.ValueType
        /// Printed on the `Formatting` line when the option was not given.
        let defaultText: String?
    }

    /// The options of each format, in the order QEMU prints them.
    static func descriptors(format: String) -> [Descriptor]? {
        switch format {
        case "qcow2":
            [
                Descriptor(name: "cluster_size", type: .size, defaultText: "65536"),
                Descriptor(name: "extended_l2", type: .bool, defaultText: "off"),
                Descriptor(name: "compression_type", type: .string, defaultText: "zlib"),
                Descriptor(name: "size", type: .size, defaultText: nil),
                Descriptor(name: "compat", type: .string, defaultText: nil),
                Descriptor(name: "backing_file", type: .string, defaultText: nil),
                Descriptor(name: "backing_fmt", type: .string, defaultText: nil),
                Descriptor(name: "lazy_refcounts", type: .bool, defaultText: "off"),
                Descriptor(name: "refcount_bits", type: .number, defaultText: "16"),
            ]
        case "raw":
            [Descriptor(name: "size", type: .size, defaultText: nil)]
        default:
            nil
        }
    }

    private let descriptors: [Descriptor]
    private var values: [String: QemuOptsParser.Value] = [:]

    init(descriptors: [Descriptor]) {
        self.descriptors = descriptors
    }

    /// Adds the items of one option list (`-o`); later items win.
    mutating func parse(_ list: String) throws(ImageToolError) {
        let parser = QemuOptsParser(
            groupName: "create", impliedName: nil,
            options: Dictionary(uniqueKeysWithValues: descriptors.map { ($0.name, $0.type) }))
        let result: QemuOptsParser.Result
        do {
            result = try parser.parse(list) { _ in }
        } catch {
            throw ImageToolError(error.description + (error.hint.map { "\n" + $0 } ?? ""))
        }
        guard case .options(let options) = result else {
            throw ImageToolError("Option help is not supported; options: " + descriptors.map(\.name).joined(separator: ", "))
        }
        for item in options.items { values[item.name] = item.value }
    }

    mutating func set(_ key: String, _ value: QemuOptsParser.Value) {
        values[key] = value
    }

    func isSet(_ key: String) -> Bool { values[key] != nil }

    func string(_ key: String) -> String? {
        if case .string(let text)? = values[key] { text } else { nil }
    }

    func number(_ key: String) -> UInt64? {
        switch values[key] {
        case .number(let number)?, .size(let number)?: number
        default: nil
        }
    }

    func flag(_ key: String) -> Bool? {
        if case .bool(let flag)? = values[key] { flag } else { nil }
    }

    /// `cluster_size=65536 extended_l2=off ...`: given options as QEMU normalises them
    /// (numbers in decimal, commas in strings doubled), defaults for the rest.
    var printed: String {
        descriptors.compactMap { descriptor -> String? in
            let text: String
            switch values[descriptor.name] {
            case nil:
                guard let defaultText = descriptor.defaultText else { return nil }
                text = defaultText
            case .string(let string)?: text = string.split(separator: ",", omittingEmptySubsequences: false).joined(separator: ",,")
            case .bool(let flag)?: text = flag ? "on" : "off"
            case .number(let number)?, .size(let number)?: text = String(number)
            }
            return "\(descriptor.name)=\(text)"
        }.joined(separator: " ")
    }
}
