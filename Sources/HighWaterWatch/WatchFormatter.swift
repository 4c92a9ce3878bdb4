import JSON
import QMPClient

#if canImport(Glibc)
import Glibc
#endif

/// Turns records into output lines: readable text, or one JSON object per line for scripts.
public enum WatchFormatter {
    // MARK: JSON

    /// `{"timestamp": {"seconds", "microseconds"}, "daemon", "type", ...}` on one line.
    public static func json(_ record: WatchRecord) -> String {
        var object: JSONObject = [
            "timestamp": ["seconds": .int(record.timestamp.seconds), "microseconds": .int(record.timestamp.microseconds)],
            "daemon": .string(record.daemon),
        ]
        switch record.kind {
        case .connected(let version, let package):
            object["type"] = "connected"
            object["version"] = .string(version)
            object["package"] = .string(package)
        case .event(let name, let data):
            object["type"] = "event"
            object["event"] = .string(name)
            object["data"] = .object(data)
        case .use(let use):
            object["type"] = "use"
            object["node-name"] = .string(use.nodeName)
            object["size"] = .unsigned(use.size)
            object["highest-offset"] = .unsigned(use.highestOffset)
            object["write-threshold"] = .unsigned(use.writeThreshold)
            if let thresholds = use.thresholds { object["thresholds"] = .array(thresholds.map(json)) }
        case .nodeRemoved(let name):
            object["type"] = "node-removed"
            object["node-name"] = .string(name)
        case .disconnected(let reason, let retry):
            object["type"] = "disconnected"
            object["reason"] = .string(reason)
            object["retry-ms"] = .int(retry)
        }
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self) + "\n"
    }

    private static func json(_ threshold: NodeUse.NamedThreshold) -> JSONValue {
        var object: JSONObject = ["name": .string(threshold.name), "write-threshold": .unsigned(threshold.value)]
        if let percent = threshold.percent { object["percent"] = .int(Int64(percent)) }
        object["mode"] = .string(threshold.mode)
        object["armed"] = .bool(threshold.isArmed)
        object["fired"] = .unsigned(threshold.fireCount)
        return .object(object)
    }

    // MARK: Text

    /// `2025-06-01 12:00:00.123 qmp.sock  <what happened>` in local time.
    public static func human(_ record: WatchRecord) -> String {
        "\(time(record.timestamp)) \(record.daemon)  \(text(record.kind))\n"
    }

    static func text(_ kind: WatchRecord.Kind) -> String {
        switch kind {
        case .connected(let version, let package):
            return "connected: QEMU \(version)" + (package.isEmpty ? "" : " (\(package))")
        case .event(let name, let data):
            return "EVENT " + eventText(name, data)
        case .use(let use):
            return useText(use)
        case .nodeRemoved(let name):
            return "\(name): removed"
        case .disconnected(let reason, let retry):
            return "disconnected: \(reason); retrying in \(Double(retry) / 1000) s"
        }
    }

    private static func eventText(_ name: String, _ data: JSONObject) -> String {
        func number(_ key: String) -> UInt64? { data[key]?.unsignedValue }
        let node = data["node-name"]?.stringValue ?? "?"
        switch name {
        case "BLOCK_WRITE_THRESHOLD":
            return "\(name) \(node): threshold \(bytes(number("write-threshold") ?? 0)) exceeded by \(bytes(number("amount-exceeded") ?? 0))"
        case "__io.highwater_WRITE_THRESHOLD":
            let threshold = data["name"]?.stringValue ?? "?"
            let percent = number("percent").map { " (\($0) %)" } ?? ""
            let cause = data["cause"]?.stringValue.map { ", on \($0)" } ?? ""
            return "\(name) \(node) '\(threshold)'\(percent): \(bytes(number("write-threshold") ?? 0)) exceeded by "
                + "\(bytes(number("amount-exceeded") ?? 0))\(cause)"
        default:
            return data.isEmpty ? name : "\(name) " + String(decoding: JSONValue.object(data).serialized(), as: UTF8.self)
        }
    }

    private static func useText(_ use: NodeUse) -> String {
        var text = "\(use.nodeName): written to \(bytes(use.highestOffset)) of \(bytes(use.size))"
        if use.size > 0 { text += " (\(percentage(use.highestOffset, of: use.size)))" }
        text += use.writeThreshold == 0 ? "; threshold off" : "; threshold \(bytes(use.writeThreshold))"
        for threshold in use.thresholds ?? [] {
            let level = threshold.percent.map { "\($0) % = " } ?? ""
            let state = threshold.isArmed ? "armed" : "fired"
            let count = threshold.fireCount > 0 ? " \(threshold.fireCount)x" : ""
            text += "; '\(threshold.name)' \(level)\(bytes(threshold.value)) \(threshold.mode) \(state)\(count)"
        }
        return text
    }

    /// `512 B`, `1.5 KiB`, `600.0 MiB`, `1.0 GiB`.
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard count >= 1024 else { return "\(count) B" }
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\(oneDecimal(value)) \(units[unit])"
    }

    private static func percentage(_ part: UInt64, of whole: UInt64) -> String {
        "\(oneDecimal(Double(part) / Double(whole) * 100)) %"
    }

    private static func oneDecimal(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return "\(Int64(tenths / 10)).\(Int64(tenths.truncatingRemainder(dividingBy: 10)))"
    }

    private static func time(_ timestamp: QMPTimestamp) -> String {
        var seconds = time_t(timestamp.seconds)
        var parts = tm()
        localtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let milliseconds = timestamp.microseconds / 1000
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)"
    }
}
