import JSON

/// One option of the storage daemon's command line, as typed.
public struct QSDOption: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case blockdev, chardev, daemonize, export, help, monitor
        case nbdServer = "nbd-server"
        case object, pidfile, trace, version
        /// A word that is not an option. QSD rejects it when the main pass reaches it:
        /// ``QSDOption/unexpectedArgumentMessage``.
        case unexpectedArgument

        /// The long option name (without `--`), in QSD's option table order.
        static let longOptions: [Kind] = [.blockdev, .chardev, .daemonize, .export, .help, .monitor, .nbdServer,
                                          .object, .pidfile, .trace, .version]

        var takesArgument: Bool {
            switch self {
            case .daemonize, .help, .version, .unexpectedArgument: false
            default: true
            }
        }

        /// The key a bare first keyval item stands for, for options parsed with keyval.
        public var impliedKey: String? {
            switch self {
            case .blockdev: "driver"
            case .export: "type"
            case .monitor: "chardev"
            case .object: "qom-type"
            default: nil
            }
        }
    }

    public var kind: Kind
    /// The option's argument (for ``Kind/unexpectedArgument``: the word itself).
    public var argument: String?
    /// The option as typed (`--blockdev driver=…`, `--block=…`, `-Tnbd_*`, `bogus`): QEMU
    /// prefixes messages about the option with it, as `qemu-storage-daemon: <location>: <message>`.
    public var location: String

    public init(kind: Kind, argument: String?, location: String) {
        self.kind = kind
        self.argument = argument
        self.location = location
    }

    /// The message for a non-option word, printed after its ``location``.
    public static let unexpectedArgumentMessage = "Unexpected argument"
}

/// A command-line syntax error, reported as `qemu-storage-daemon: <description>` with exit
/// status 1 before any option takes effect.
public struct QSDCommandLineError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Splits the storage daemon's arguments the way QSD 7.2's `getopt_long` loop does.
public enum QSDCommandLine {
    /// Splits `arguments` (without the program name) into options, in order.
    ///
    /// As in QSD, options are recognised by unambiguous prefixes (`--block` is `--blockdev`),
    /// take their argument as `--opt value` or `--opt=value` (and `-Tvalue`/`-T value`), and
    /// `--` ends option processing (the rest is ignored). `-h`/`--help` and `-V`/`--version`
    /// end the scan: QSD acts on them before looking further, so when present they are the
    /// last element. Syntax errors before them are thrown; non-option words are kept as
    /// ``QSDOption/Kind/unexpectedArgument`` because QSD only rejects them in its main pass,
    /// after the options before them have taken effect.
    public static func parse(_ arguments: [String]) throws(QSDCommandLineError) -> [QSDOption] {
        var options: [QSDOption] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" { break }
            let option: QSDOption
            if argument.hasPrefix("--") {
                option = try longOption(argument, rest: arguments, index: &index)
            } else if argument.hasPrefix("-"), argument.count > 1 {
                option = try shortOption(argument, rest: arguments, index: &index)
            } else {
                option = QSDOption(kind: .unexpectedArgument, argument: argument, location: argument)
            }
            options.append(option)
            if option.kind == .help || option.kind == .version { break }
        }
        return options
    }

    /// The object and visiting mode for a `--blockdev`/`--export`/`--monitor`/`--nbd-server`
    /// argument: JSON when it starts with `{` (parsed by `parseJSON`, which must reject
    /// non-objects), keyval with the option's implied key otherwise.
    public static func structuredArgument(
        _ option: QSDOption, parseJSON: (String) throws -> JSONObject
    ) throws -> (object: JSONObject, mode: QAPIInputMode) {
        let argument = option.argument ?? ""
        if argument.hasPrefix("{") { return (try parseJSON(argument), .json) }
        return (try KeyvalParser.parse(argument, impliedKey: option.kind.impliedKey), .keyval)
    }

    private static func longOption(_ argument: String, rest arguments: [String], index: inout Int) throws(QSDCommandLineError) -> QSDOption {
        let body = argument.dropFirst(2)
        let name = body.prefix { $0 != "=" }
        let inlineValue = name.endIndex < body.endIndex ? String(body[body.index(after: name.endIndex)...]) : nil
        let kind: QSDOption.Kind
        if let exact = QSDOption.Kind.longOptions.first(where: { $0.rawValue == name }) {
            kind = exact
        } else {
            let candidates = QSDOption.Kind.longOptions.filter { $0.rawValue.hasPrefix(name) }
            guard let only = candidates.first else { throw QSDCommandLineError("unrecognized option '\(argument)'") }
            guard candidates.count == 1 else {
                let possibilities = candidates.map { " '--\($0.rawValue)'" }.joined()
                throw QSDCommandLineError("option '\(argument)' is ambiguous; possibilities:\(possibilities)")
            }
            kind = only
        }
        guard kind.takesArgument else {
            if inlineValue != nil { throw QSDCommandLineError("option '--\(kind.rawValue)' doesn't allow an argument") }
            return QSDOption(kind: kind, argument: nil, location: argument)
        }
        if let inlineValue { return QSDOption(kind: kind, argument: inlineValue, location: argument) }
        guard index < arguments.count else { throw QSDCommandLineError("option '--\(kind.rawValue)' requires an argument") }
        let value = arguments[index]
        index += 1
        return QSDOption(kind: kind, argument: value, location: "\(argument) \(value)")
    }

    /// A short option. QSD's only ones are `-h`, `-V` (which act at once, so the rest of a
    /// cluster like `-hV` is never looked at) and `-T` (whose argument is the rest of the
    /// word or the next one), so a word holds exactly one option.
    private static func shortOption(_ argument: String, rest arguments: [String], index: inout Int) throws(QSDCommandLineError) -> QSDOption {
        let letters = argument.dropFirst()
        switch letters.first {
        case "h": return QSDOption(kind: .help, argument: nil, location: argument)
        case "V": return QSDOption(kind: .version, argument: nil, location: argument)
        case "T":
            if letters.count > 1 { return QSDOption(kind: .trace, argument: String(letters.dropFirst()), location: argument) }
            guard index < arguments.count else { throw QSDCommandLineError("option requires an argument -- 'T'") }
            let value = arguments[index]
            index += 1
            return QSDOption(kind: .trace, argument: value, location: "\(argument) \(value)")
        default:
            throw QSDCommandLineError("invalid option -- '\(letters.first!)'")
        }
    }
}
