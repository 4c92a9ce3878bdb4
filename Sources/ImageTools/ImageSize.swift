#if canImport(Glibc)
import Glibc
#endif

/// Byte counts as qemu-img prints them (QEMU's `size_to_str`); input goes through QAPI's
/// `SizeSyntax`.
public enum ImageSize {
    /// `1 GiB`, `196 KiB`, `3.34 MiB`, `0 B`: three significant digits, switching to the
    /// next unit from 1000 of the current one.
    public static func humanReadable(_ value: UInt64) -> String {
        let units = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        var exponent: Int32 = 0
        _ = frexp(Double(value) / (1000.0 / 1024.0), &exponent)
        let index = Int((exponent - 1) / 10)
        let divisor = Double(UInt64(1) << UInt64(index * 10))
        return cFormat("%0.3g", Double(value) / divisor) + " " + units[index] + "B"
    }
}

/// C's `printf` formatting of one double.
func cFormat(_ format: String, _ value: Double) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, format, $0) }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
