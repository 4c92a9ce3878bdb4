import JSON
import Testing

@testable import QAPI

/// Behaviour and texts observed with qemu-storage-daemon 7.2 (getopt_long, glibc).
struct QSDCommandLineTests {
    private func expectError(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: QSDCommandLineError(message), sourceLocation: sourceLocation) { try QSDCommandLine.parse(arguments) }
    }

    @Test func canonicalInvocation() throws {
        let options = try QSDCommandLine.parse([
            "--chardev", "socket,id=qmp0,path=/run/qsd/qmp.sock,server=on,wait=off",
            "--monitor", "chardev=qmp0",
            "--blockdev", "driver=host_device,node-name=prot0,filename=/dev/vg/lv0",
            "--nbd-server", "addr.type=unix,addr.path=/run/qsd/nbd.sock",
            "--export", "type=nbd,id=exp0,node-name=prot0,name=disk0,writable=on",
            "--pidfile", "/run/qsd/qsd.pid", "--daemonize",
        ])
        #expect(options.map(\.kind) == [.chardev, .monitor, .blockdev, .nbdServer, .export, .pidfile, .daemonize])
        #expect(options[1] == QSDOption(kind: .monitor, argument: "chardev=qmp0", location: "--monitor chardev=qmp0"))
        #expect(options[5].argument == "/run/qsd/qsd.pid")
        #expect(options[6] == QSDOption(kind: .daemonize, argument: nil, location: "--daemonize"))
    }

    @Test func noArgumentsIsLegal() throws {
        #expect(try QSDCommandLine.parse([]).isEmpty)
    }

    @Test func equalsForm() throws {
        #expect(try QSDCommandLine.parse(["--blockdev=x=1"]) == [QSDOption(kind: .blockdev, argument: "x=1", location: "--blockdev=x=1")])
        #expect(try QSDCommandLine.parse(["--blockdev="]) == [QSDOption(kind: .blockdev, argument: "", location: "--blockdev=")])
        #expect(try QSDCommandLine.parse(["--trace=x"]) == [QSDOption(kind: .trace, argument: "x", location: "--trace=x")])
    }

    @Test func unambiguousPrefixes() throws {
        #expect(try QSDCommandLine.parse(["--block", "x=1"]) == [QSDOption(kind: .blockdev, argument: "x=1", location: "--block x=1")])
        #expect(try QSDCommandLine.parse(["--blockd=x=1"]) == [QSDOption(kind: .blockdev, argument: "x=1", location: "--blockd=x=1")])
        #expect(try QSDCommandLine.parse(["--nbd", "x", "--m", "y", "--e", "z", "--o", "w", "--c", "v", "--p", "f", "--d"]).map(\.kind)
            == [.nbdServer, .monitor, .export, .object, .chardev, .pidfile, .daemonize])
        #expect(try QSDCommandLine.parse(["--h"]).map(\.kind) == [.help])
        #expect(try QSDCommandLine.parse(["--v"]).map(\.kind) == [.version])
    }

    @Test func argumentsAreTakenVerbatimEvenIfTheyLookLikeOptions() throws {
        #expect(try QSDCommandLine.parse(["--pidfile", "--blockdev"]) == [QSDOption(kind: .pidfile, argument: "--blockdev", location: "--pidfile --blockdev")])
        #expect(try QSDCommandLine.parse(["-T", "-h"]) == [QSDOption(kind: .trace, argument: "-h", location: "-T -h")])
    }

    @Test func shortOptions() throws {
        #expect(try QSDCommandLine.parse(["-Tnbd_*"]) == [QSDOption(kind: .trace, argument: "nbd_*", location: "-Tnbd_*")])
        #expect(try QSDCommandLine.parse(["-T", "foo"]) == [QSDOption(kind: .trace, argument: "foo", location: "-T foo")])
        #expect(try QSDCommandLine.parse(["-hx"]).map(\.kind) == [.help])
        #expect(try QSDCommandLine.parse(["-Vh"]).map(\.kind) == [.version])
        #expect(try QSDCommandLine.parse(["-hV"]).map(\.kind) == [.help])
    }

    @Test func helpAndVersionEndTheScan() throws {
        #expect(try QSDCommandLine.parse(["--blockdev", "x=1", "--help", "--bogus-opt"]).map(\.kind) == [.blockdev, .help])
        #expect(try QSDCommandLine.parse(["bogus", "--version", "-x"]).map(\.kind) == [.unexpectedArgument, .version])
        #expect(try QSDCommandLine.parse(["-VT"]).map(\.kind) == [.version])
    }

    @Test func nonOptionWordsAreKeptInOrder() throws {
        let options = try QSDCommandLine.parse(["--blockdev", "x=1", "bogus-positional", "-"])
        #expect(options.map(\.kind) == [.blockdev, .unexpectedArgument, .unexpectedArgument])
        #expect(options[1] == QSDOption(kind: .unexpectedArgument, argument: "bogus-positional", location: "bogus-positional"))
        #expect(options[2].location == "-")
        #expect(QSDOption.unexpectedArgumentMessage == "Unexpected argument")
    }

    @Test func doubleDashEndsOptions() throws {
        #expect(try QSDCommandLine.parse(["--daemonize", "--", "bogus", "--bogus-opt"]).map(\.kind) == [.daemonize])
    }

    @Test func syntaxErrors() {
        expectError(["--bogus-opt"], "unrecognized option '--bogus-opt'")
        expectError(["--bogus-opt=5"], "unrecognized option '--bogus-opt=5'")
        expectError(["--blockdev", "x=1", "--bogus-opt"], "unrecognized option '--bogus-opt'")
        expectError(["--blockdev"], "option '--blockdev' requires an argument")
        expectError(["--block"], "option '--blockdev' requires an argument")
        expectError(["--export"], "option '--export' requires an argument")
        expectError(["--trace"], "option '--trace' requires an argument")
        expectError(["--blockdev", "x=1", "--pidfile"], "option '--pidfile' requires an argument")
        expectError(["-T"], "option requires an argument -- 'T'")
        expectError(["--blockdev", "x=1", "-T"], "option requires an argument -- 'T'")
        expectError(["-x"], "invalid option -- 'x'")
        expectError(["-xh"], "invalid option -- 'x'")
        expectError(["--help=x"], "option '--help' doesn't allow an argument")
        expectError(["--daemonize=x"], "option '--daemonize' doesn't allow an argument")
        expectError(["--d=x"], "option '--daemonize' doesn't allow an argument")
        let all = " '--blockdev' '--chardev' '--daemonize' '--export' '--help' '--monitor' '--nbd-server' '--object' '--pidfile' '--trace' '--version'"
        expectError(["--=x"], "option '--=x' is ambiguous; possibilities:\(all)")
    }

    @Test func structuredArguments() throws {
        let keyval = try QSDCommandLine.structuredArgument(
            QSDOption(kind: .blockdev, argument: "null-co,node-name=n0", location: "")) { _ in Issue.record("not JSON"); return [:] }
        #expect(keyval.object == ["driver": "null-co", "node-name": "n0"])
        #expect(keyval.mode == .keyval)
        #expect(try QSDCommandLine.structuredArgument(
            QSDOption(kind: .monitor, argument: "m0", location: "")) { _ in [:] }.object == ["chardev": "m0"])
        #expect(try QSDCommandLine.structuredArgument(
            QSDOption(kind: .export, argument: "nbd,id=e", location: "")) { _ in [:] }.object == ["type": "nbd", "id": "e"])
        #expect(throws: QAPIError("Expected '=' after parameter 'x'")) {
            try QSDCommandLine.structuredArgument(QSDOption(kind: .nbdServer, argument: "x", location: "")) { _ in [:] }
        }
        let json = try QSDCommandLine.structuredArgument(
            QSDOption(kind: .nbdServer, argument: "{\"addr\":{}}", location: "")) { text in
                #expect(text == "{\"addr\":{}}")
                return ["addr": [:]]
            }
        #expect(json.mode == .json)
        #expect(json.object == ["addr": [:]])
    }
}
