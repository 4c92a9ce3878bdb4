import Testing

@testable import QAPI

/// Accepted/rejected forms observed via `--blockdev null-co,size=…` and
/// `--nbd-server …,max-connections=…` on qemu-storage-daemon 7.2.
struct CIntegerSyntaxTests {
    @Test func signedForms() {
        #expect(CIntegerSyntax.int64("42") == 42)
        #expect(CIntegerSyntax.int64(" 5") == 5)
        #expect(CIntegerSyntax.int64("+5") == 5)
        #expect(CIntegerSyntax.int64("-0") == 0)
        #expect(CIntegerSyntax.int64("0X10") == 16)
        #expect(CIntegerSyntax.int64("0x10") == 16)
        #expect(CIntegerSyntax.int64("-0x10") == -16)
        #expect(CIntegerSyntax.int64("07") == 7)
        #expect(CIntegerSyntax.int64("010") == 8)
        #expect(CIntegerSyntax.int64("0") == 0)
        #expect(CIntegerSyntax.int64("0x7fffffffffffffff") == Int64.max)
        #expect(CIntegerSyntax.int64("-9223372036854775808") == Int64.min)
    }

    @Test(arguments: ["", " ", "0x", "08", "5 ", "1e3", "1M", "0xffffffffffffffff", "9223372036854775808",
                      "-9223372036854775809", "99999999999999999999", "+", "-", "x", "0xg"])
    func signedRejects(text: String) {
        #expect(CIntegerSyntax.int64(text) == nil)
    }

    @Test func unsignedWrapsNegatives() {
        #expect(CIntegerSyntax.uint64("-1") == UInt64.max)
        #expect(CIntegerSyntax.uint64("-18446744073709551615") == 1)
        #expect(CIntegerSyntax.uint64("18446744073709551615") == UInt64.max)
        #expect(CIntegerSyntax.uint64("0xffffffffffffffff") == UInt64.max)
        #expect(CIntegerSyntax.uint64(" 7") == 7)
        #expect(CIntegerSyntax.uint64("-18446744073709551616") == nil)
        #expect(CIntegerSyntax.uint64("18446744073709551616") == nil)
        #expect(CIntegerSyntax.uint64("0x") == nil)
    }
}
