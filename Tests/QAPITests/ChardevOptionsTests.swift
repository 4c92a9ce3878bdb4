import Testing

@testable import QAPI

/// Texts observed with qemu-storage-daemon 7.2 (`--chardev`).
struct ChardevOptionsTests {
    private func parse(_ text: String) throws(QAPIError) -> (ChardevOptions.ParseResult, [QAPIWarning]) {
        var warnings: [QAPIWarning] = []
        let result = try ChardevOptions.parse(text) { warnings.append($0) }
        return (result, warnings)
    }

    private func chardev(_ text: String) throws(QAPIError) -> ChardevOptions {
        guard case .chardev(let options) = try parse(text).0 else { throw QAPIError("not a chardev") }
        return options
    }

    private func expectError(_ text: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: QAPIError(message), sourceLocation: sourceLocation) { try parse(text) }
    }

    @Test func unixServerSocket() throws {
        let (result, warnings) = try parse("socket,id=qmp0,path=/run/qsd/qmp.sock,server=on,wait=off")
        #expect(result == .chardev(ChardevOptions(id: "qmp0", backend: .socket(SocketChardevOptions(
            address: .unix(UnixSocketAddress(path: "/run/qsd/qmp.sock")), server: true, wait: false)))))
        #expect(warnings.isEmpty)
    }

    @Test func defaultsAreClientAndWait() throws {
        let options = try chardev("socket,id=c,path=/x")
        #expect(options.backend == .socket(SocketChardevOptions(address: .unix(UnixSocketAddress(path: "/x")), server: false, wait: true)))
    }

    @Test func tcpSocket() throws {
        var inet = InetSocketAddress(host: "127.0.0.1", port: "4444")
        inet.ipv4 = true
        #expect(try chardev("socket,id=c,host=127.0.0.1,port=4444,ipv4=on,server=on,wait=off").backend
            == .socket(SocketChardevOptions(address: .inet(inet), server: true, wait: false)))
    }

    @Test func explicitBackendKeyAndEscapes() throws {
        #expect(try chardev("backend=socket,id=c,path=/tmp/x,,y.sock,server=on,wait=off").backend
            == .socket(SocketChardevOptions(address: .unix(UnixSocketAddress(path: "/tmp/x,y.sock")), server: true, wait: false)))
    }

    @Test func laterValuesWinButTheFirstIdDoes() throws {
        let options = try chardev("socket,id=c0,id=c1,path=/a,server=on,wait=off,path=/b")
        #expect(options.id == "c0")
        #expect(options.backend == .socket(SocketChardevOptions(address: .unix(UnixSocketAddress(path: "/b")), server: true, wait: false)))
    }

    @Test func shortFormBooleansWarn() throws {
        let (result, warnings) = try parse("socket,id=c0,path=/x,server,nowait")
        #expect(result == .chardev(ChardevOptions(id: "c0", backend: .socket(SocketChardevOptions(
            address: .unix(UnixSocketAddress(path: "/x")), server: true, wait: false)))))
        #expect(warnings == [
            QAPIWarning("short-form boolean option 'server' deprecated", hint: "Please use server=on instead"),
            QAPIWarning("short-form boolean option 'nowait' deprecated", hint: "Please use wait=off instead"),
        ])
    }

    @Test func delayWarningsNameNodelay() throws {
        let (_, warnings) = try parse("socket,id=c,path=/x,server=on,wait=off,nodelay")
        #expect(warnings == [QAPIWarning("short-form boolean option 'nodelay' deprecated", hint: "Please use nodelay=on instead")])
        var seen: [QAPIWarning] = []
        #expect(throws: QAPIError("'delay' and 'nodelay' are mutually exclusive")) {
            try ChardevOptions.parse("socket,id=c,path=/x,delay,nodelay=on") { seen.append($0) }
        }
        // The warning is reported even though parsing fails later.
        #expect(seen == [QAPIWarning("short-form boolean option 'delay' deprecated", hint: "Please use nodelay=off instead")])
    }

    @Test func errors() {
        expectError("x", "chardev: no id specified")
        expectError("", "chardev: no id specified")
        expectError("socket,path=/x,server=on,wait=off", "chardev: no id specified")
        expectError("id=c0", "chardev: \"c0\" missing backend")
        expectError("bogus,id=c0", "'bogus' is not a valid char driver name")
        expectError("Socket,id=x", "'Socket' is not a valid char driver name")
        expectError("unix,id=x", "'unix' is not a valid char driver name")
        expectError(",id=x", "'' is not a valid char driver name")
        expectError("soc,,ket,id=x", "'soc,ket' is not a valid char driver name")
        expectError("socket,id=c0,path=/x,server=on,wait=off,bogus=1", "Invalid parameter 'bogus'")
        expectError("socket,path=/x,id=c0,server=on,wait=off,=x", "Invalid parameter ''")
        expectError("socket,id=x,help=on", "Invalid parameter 'help'")
        expectError("socket,id=c0,path=/x,server=maybe,wait=off", "Parameter 'server' expects 'on' or 'off'")
        expectError("socket,path=/x,id=c0,server=on,wait=off,,", "Parameter 'wait' expects 'on' or 'off'")
        expectError("stdio,id=s,signal=x", "Parameter 'signal' expects 'on' or 'off'")
        expectError("socket,id=c0,path=/x,reconnect=x", "Parameter 'reconnect' expects a number")
        expectError("socket,id=c0,path=/x,reconnect=99999999999999999999999",
                    "Value '99999999999999999999999' is too large for parameter 'reconnect'")
        expectError("socket,id=c0,path=/x,host=x", "None or one of 'path', 'fd' or 'host' option required.")
        expectError("socket,id=c0,path=/x,server=on,wait=off,fd=3", "None or one of 'path', 'fd' or 'host' option required.")
        expectError("socket,id=c0,host=localhost", "chardev: socket: no port given")
        expectError("socket,id=c0,path=/x,wait=off", "'wait' option is incompatible with socket in client connect mode")
        expectError("socket,id=c0,wait=off", "'wait' option is incompatible with socket in client connect mode")
        expectError("socket,id=x,server=on,wait=off,path=/x,reconnect=1",
                    "'reconnect' option is incompatible with socket in server listen mode")
    }

    @Test func badIdentifierHasAHint() {
        for text in ["socket,id=1c0,path=/x", "socket,id=,path=/x", "help,id=1x"] {
            #expect(throws: QAPIError("Parameter 'id' expects an identifier",
                                      hint: "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.")) {
                try parse(text)
            }
        }
    }

    @Test func sizeHasAHint() {
        #expect(throws: QAPIError("Parameter 'size' expects a non-negative number below 2^64",
                                  hint: "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.")) {
            try parse("socket,id=c0,path=/x,server=on,wait=off,size=1x")
        }
    }

    @Test func help() throws {
        #expect(try parse("help").0 == .listBackends)
        #expect(try parse("?").0 == .listBackends)
        #expect(try parse("socket,id=x,help").0 == .listOptions)
        #expect(try parse("socket,?").0 == .listOptions)
        #expect(ChardevOptions.backendListText.hasPrefix("Available chardev backend types: \n  pty\n  udp\n"))
        #expect(ChardevOptions.backendListText.hasSuffix("  mux\n  serial\n"))
        #expect(ChardevOptions.optionListText.hasPrefix("chardev options:\n  abstract=<bool (on/off)>\n  append=<bool (on/off)>\n  backend=<str>\n"))
        #expect(ChardevOptions.optionListText.hasSuffix("  websocket=<bool (on/off)>\n  width=<num>\n"))
        #expect(ChardevOptions.optionListText.contains("\n  size=<size>\n  telnet=<bool (on/off)>\n"))
    }

    @Test func otherBackendsAndAliases() throws {
        #expect(try chardev("null,id=n").backend == .other("null"))
        #expect(try chardev("stdio,id=s").backend == .stdio(signal: true))
        #expect(try chardev("stdio,id=s,signal=off").backend == .stdio(signal: false))
        let (result, warnings) = try parse("tty,id=x")
        #expect(result == .chardev(ChardevOptions(id: "x", backend: .other("serial"))))
        #expect(warnings == [QAPIWarning("The alias 'tty' is deprecated, use 'serial' instead")])
    }

    @Test func socketWithoutAddressIsAnEmptyFD() throws {
        #expect(try chardev("socket,id=c0,server=on,wait=off").backend
            == .socket(SocketChardevOptions(address: .fd(""), server: true, wait: false)))
    }
}
