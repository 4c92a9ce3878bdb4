import JSON

/// What a QMP monitor says about itself when a client connects.
public struct QMPGreeting: Sendable, Equatable {
    /// The QEMU version it claims, as `major.minor.micro` (`?` for a part it left out).
    public var version: String
    /// The `package` string (e.g. a distribution's build), empty if absent.
    public var package: String
    /// The capabilities it offers (`oob`).
    public var capabilities: [String]

    public init(version: String, package: String, capabilities: [String]) {
        self.version = version
        self.package = package
        self.capabilities = capabilities
    }

    /// Reads the `QMP` member of the greeting message.
    public init(_ greeting: JSONValue) {
        let version = greeting["version"]?["qemu"]
        let numbers = ["major", "minor", "micro"].map { part -> String in
            switch version?[part] {
            case .int(let number)?: String(number)
            case .uint(let number)?: String(number)
            default: "?"
            }
        }
        self.init(
            version: numbers.joined(separator: "."), package: greeting["version"]?["package"]?.stringValue ?? "",
            capabilities: greeting["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? [])
    }
}
