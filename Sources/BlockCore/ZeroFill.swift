/// Writing zeroes with plain writes, for drivers whose storage has no faster way (or when it
/// fails): one zeroed buffer of at most 1 MiB, written again and again.
public enum ZeroFill {
    public static func write(
        at offset: UInt64, length: UInt64,
        using write: (_ offset: UInt64, _ zeroes: UnsafeRawBufferPointer) throws(BlockError) -> Void
    ) throws(BlockError) {
        let chunk = Int(min(length, 1 << 20))
        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let count = Int(min(UInt64(chunk), length - done))
            try write(offset + done, UnsafeRawBufferPointer(rebasing: zeroes[..<count]))
            done += UInt64(count)
        }
    }
}
