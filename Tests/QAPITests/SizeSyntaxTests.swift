import Testing

@testable import QAPI

/// Accepted/rejected forms observed via `--export type=vduse-blk,…,logical-block-size=…`
/// on qemu-storage-daemon 7.2.
struct SizeSyntaxTests {
    @Test func accepted() {
        #expect(SizeSyntax.parse("512") == 512)
        #expect(SizeSyntax.parse("1K") == 1024)
        #expect(SizeSyntax.parse("512b") == 512)
        #expect(SizeSyntax.parse("1.5K") == 1536)
        #expect(SizeSyntax.parse("1.k") == 1024)
        #expect(SizeSyntax.parse("1.") == 1)
        #expect(SizeSyntax.parse("0x10") == 16)
        #expect(SizeSyntax.parse("0x1b") == 27)
        #expect(SizeSyntax.parse("0x10K") == 16384)
        #expect(SizeSyntax.parse("1E") == 1 << 60)
        #expect(SizeSyntax.parse("1.5E") == 3 << 59)
        #expect(SizeSyntax.parse("2.E") == 2 << 60)
        #expect(SizeSyntax.parse(" 4K") == 4096)
        #expect(SizeSyntax.parse("+4K") == 4096)
        #expect(SizeSyntax.parse("15.99999E") != nil)
        #expect(SizeSyntax.parse("0.5K") == 512)
    }

    @Test(arguments: ["", "1.5", "0x", "1e3", "1.5e3K", "1.e5K", "-4K", "16E", "1.0000000001B", "0.5B", "0x10.5",
                      "0x1.5K", "4KB", "K", "x"])
    func rejected(text: String) {
        #expect(SizeSyntax.parse(text) == nil)
    }
}
