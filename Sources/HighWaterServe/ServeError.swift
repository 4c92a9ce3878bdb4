/// Why `serve` cannot start.
struct ServeError: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}
