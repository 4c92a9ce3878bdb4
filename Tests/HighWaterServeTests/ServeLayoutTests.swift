import AutoExtend
import QMPClient
import Testing
@testable import HighWaterServe

@Suite struct ServeLayoutTests {
    let layout = ServeLayout(folder: "/srv/hw,data")

    @Test func filesLiveInTheFolder() {
        #expect(layout.disk == "/srv/hw,data/disk.qcow2")
        #expect(layout.nbdSocket == "/srv/hw,data/nbd.sock")
        #expect(layout.qmpSocket == "/srv/hw,data/qmp.sock")
        #expect(layout.controllerSocket == "/srv/hw,data/autoextend.sock")
        #expect(layout.exportURI == "nbd+unix:///disk0?socket=/srv/hw,data/nbd.sock")
    }

    @Test func theDaemonOpensAFileVolumeExportsWithHoldAndHasTwoMonitors() {
        #expect(layout.daemonArguments == [
            "--blockdev", "driver=file,node-name=disk0-file,filename=/srv/hw,,data/disk.qcow2,discard=unmap,__io.highwater_volume=on",
            "--blockdev", "driver=qcow2,node-name=disk0,file=disk0-file,discard=unmap",
            "--nbd-server", "addr.type=unix,addr.path=/srv/hw,,data/nbd.sock",
            "--export", "type=nbd,id=export0,node-name=disk0,name=disk0,writable=on,__io.highwater_on-enospc=hold",
            "--chardev", "socket,id=qmp0,path=/srv/hw,,data/qmp.sock,server=on,wait=off",
            "--monitor", "chardev=qmp0",
            "--chardev", "socket,id=autoextend0,path=/srv/hw,,data/autoextend.sock,server=on,wait=off",
            "--monitor", "chardev=autoextend0",
        ])
    }

    @Test func theControllerGrowsTheVolumeNodeAsAFileOnItsOwnMonitor() {
        let configuration = layout.controllerConfiguration(ServeOptions(chunk: 64 << 20, utilizationPercent: 25))
        #expect(configuration.daemons == [
            DaemonConfiguration(address: .unix(path: "/srv/hw,data/autoextend.sock"), volumes: [
                // No maximum: the controller takes 1.1 x the qcow2's virtual size from the daemon.
                VolumeConfiguration(nodeName: "disk0-file", backend: .file(path: nil), chunk: 64 << 20, utilizationPercent: 25, maximum: nil),
            ]),
        ])
        #expect(configuration.metrics == nil)
    }
}
