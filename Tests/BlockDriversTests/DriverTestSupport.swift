import BlockCore
import Foundation
import Synchronization

/// A fresh directory under /tmp (a real file system: sparse files, O_DIRECT), removed on deinit.
final class TemporaryDirectory {
    let path: String

    /// A new directory in `parent` (default: the system's temporary directory).
    init(parent: String = NSTemporaryDirectory()) {
        path = parent + "highwater-block-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Creates a sparse file of `size` bytes.
    func file(_ name: String, size: Int) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: nil)
        precondition(truncate(file, off_t(size)) == 0)
        return file
    }
}

/// Runs a program; returns exit status and combined output.
@discardableResult
func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

final class EventRecorder: BlockEventSink {
    private let events = Mutex<[BlockEvent]>([])
    var recorded: [BlockEvent] { events.withLock { $0 } }
    func blockEvent(_ event: BlockEvent) { events.withLock { $0.append(event) } }
}

func makeNode(_ driver: any BlockDriver, _ options: BlockNodeOptions, sink: EventRecorder = EventRecorder()) throws -> BlockNode {
    try BlockNode(options: options, driver: driver, eventSink: sink)
}

/// Reads a file's bytes behind the driver's back.
func contents(of path: String, at offset: Int, count: Int) -> [UInt8] {
    let handle = FileHandle(forReadingAtPath: path)!
    defer { try? handle.close() }
    try! handle.seek(toOffset: UInt64(offset))
    return Array(try! handle.read(upToCount: count) ?? Data())
}

func fileSize(_ path: String) -> Int {
    (try! FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
}

extension BlockNode {
    func write(at offset: UInt64, _ bytes: [UInt8], flags: WriteFlags = []) throws {
        try bytes.withUnsafeBytes { try write(at: offset, from: $0, flags: flags) }
    }

    func read(at offset: UInt64, count: Int, filler: UInt8 = 0xEE) throws -> [UInt8] {
        var bytes = [UInt8](repeating: filler, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }
}
