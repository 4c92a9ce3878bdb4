/// A failure while processing the command line; printed as one line on stderr, exit status 1.
public struct DaemonStartupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
