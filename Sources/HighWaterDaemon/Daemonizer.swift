import QAPI

#if canImport(Glibc)
import Glibc
#endif

/// `--daemonize`, as qemu-storage-daemon does it: fork before anything else; the parent waits
/// until the child has finished startup (options processed, PID file written) and exits 0,
/// or exits 1 if the child's startup failed (the child printed why on the original stderr).
///
/// Forking must happen before the process starts any thread, so `startIfRequested` runs
/// first thing in `main`.
public final class Daemonizer: Sendable {
    private let readinessDescriptor: Int32

    private init(readinessDescriptor: Int32) {
        self.readinessDescriptor = readinessDescriptor
    }

    /// Forks when `arguments` (the daemon's) ask for it. Returns in the child (with the
    /// daemonizer to signal readiness) or when not daemonizing (nil); never in the parent.
    public static func startIfRequested(arguments: [String]) -> Daemonizer? {
        // Syntax errors are reported by the normal startup, in the foreground.
        guard let options = try? QSDCommandLine.parse(arguments), options.contains(where: { $0.kind == .daemonize }),
              !options.contains(where: { $0.kind == .help || $0.kind == .version })
        else { return nil }
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { return nil }
        let pid = fork()
        if pid < 0 { return nil }
        if pid > 0 {
            close(descriptors[1])
            var byte: UInt8 = 0
            var count: Int
            repeat { count = read(descriptors[0], &byte, 1) } while count < 0 && errno == EINTR
            exit(count == 1 ? 0 : 1)
        }
        close(descriptors[0])
        setsid()
        return Daemonizer(readinessDescriptor: descriptors[1])
    }

    /// Startup is complete: let the parent exit 0 and detach from the terminal.
    func startupCompleted() {
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for descriptor: Int32 in [0, 1, 2] { dup2(null, descriptor) }
            if null > 2 { close(null) }
        }
        var byte: UInt8 = 0
        _ = write(readinessDescriptor, &byte, 1)
        close(readinessDescriptor)
    }
}
