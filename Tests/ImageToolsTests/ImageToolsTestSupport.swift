import Foundation
import Testing

/// A folder under /tmp, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "imagetools-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

/// What a program printed and how it ended.
struct ToolRun: Equatable {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs a program (qemu-img, qemu-io) and collects its output.
func run(_ arguments: [String]) throws -> ToolRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolRun(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self), errors: String(decoding: errorData, as: UTF8.self))
}

/// Runs a program and requires it to succeed.
@discardableResult
func tool(_ arguments: String...) throws -> ToolRun {
    try runTool(arguments)
}

@discardableResult
func runTool(_ arguments: [String]) throws -> ToolRun {
    let result = try run(arguments)
    try #require(result.status == 0, "\(arguments.joined(separator: " ")): \(result.errors)")
    return result
}

func bytes(of path: String) -> [UInt8] {
    Array(FileManager.default.contents(atPath: path) ?? Data())
}

/// Overwrites bytes of a file (to damage images on purpose).
func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    handle.write(Data(bytes))
}

func bigEndian(_ value: UInt64, bytes count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (count - 1 - $0))) }
}
