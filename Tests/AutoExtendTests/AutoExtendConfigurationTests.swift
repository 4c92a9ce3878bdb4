import Testing
@testable import AutoExtend

@Suite struct AutoExtendConfigurationTests {
    @Test func readsDaemonsVolumesAndOptions() throws {
        let configuration = try AutoExtendConfiguration.parse(json: """
            {
              "metrics": "127.0.0.1:9187",
              "retry-initial-ms": 50, "retry-maximum-ms": 5000, "command-timeout-s": 10,
              "daemons": [
                {"qmp": "/run/hw/qmp.sock", "volumes": [
                  {"node-name": "vol0", "backend": "loop", "chunk": "64M", "utilization": 50, "maximum": "2G"},
                  {"node-name": "vol1", "backend": "file", "path": "/srv/vol1.qcow2", "chunk": 1048576}
                ]},
                {"qmp": "10.0.0.2:4444", "volumes": [
                  {"node-name": "lv0", "backend": "lvm", "lv": "vg/lv0", "lvextend": ["lvm", "lvextend"]},
                  {"node-name": "x", "backend": "command", "command": "grow.sh"}
                ]}
              ]
            }
            """)
        #expect(configuration.metrics == MetricsAddress("127.0.0.1:9187"))
        #expect(configuration.backoff == RetryBackoff(initial: .milliseconds(50), maximum: .seconds(5)))
        #expect(configuration.commandTimeout == .seconds(10))
        #expect(configuration.daemons == [
            DaemonConfiguration(address: .unix(path: "/run/hw/qmp.sock"), volumes: [
                VolumeConfiguration(nodeName: "vol0", backend: .loop(device: nil), chunk: 64 << 20, utilizationPercent: 50, maximum: 2 << 30),
                VolumeConfiguration(nodeName: "vol1", backend: .file(path: "/srv/vol1.qcow2"), chunk: 1 << 20),
            ]),
            DaemonConfiguration(address: .tcp(host: "10.0.0.2", port: 4444), volumes: [
                VolumeConfiguration(nodeName: "lv0", backend: .lvm(logicalVolume: "vg/lv0", program: ["lvm", "lvextend"])),
                VolumeConfiguration(nodeName: "x", backend: .command("grow.sh")),
            ]),
        ])
    }

    @Test func defaultsAreVdsms() throws {
        let configuration = try AutoExtendConfiguration.parse(json: #"{"daemons": [{"qmp": "q.sock", "volumes": [{"node-name": "v", "backend": "loop"}]}]}"#)
        let volume = try #require(configuration.daemons.first?.volumes.first)
        #expect(volume.chunk == 2560 << 20)
        #expect(volume.utilizationPercent == 20)
        #expect(volume.maximum == nil)
        #expect(configuration.metrics == nil)
        #expect(configuration.backoff == RetryBackoff())
    }

    @Test(arguments: [
        ("[]", "configuration: expected an object"),
        ("{}", "configuration: 'daemons' must list at least one daemon"),
        (#"{"daemons": [], "x": 1}"#, "configuration: unknown member 'x'"),
        (#"{"daemons": [{"volumes": []}]}"#, "daemons[0]: 'qmp' (the daemon's QMP socket) is required"),
        (#"{"daemons": [{"qmp": "q", "volumes": []}]}"#, "daemons[0]: 'volumes' must list at least one volume"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"backend": "loop"}]}]}"#, "daemons[0].volumes[0]: 'node-name' (the volume's protocol node) is required"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v"}]}]}"#, "daemons[0].volumes[0]: 'backend' is required: one of loop, file, lvm, command"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "zfs"}]}]}"#, "daemons[0].volumes[0].backend: expected one of loop, file, lvm, command"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop", "path": "/x"}]}]}"#, "daemons[0].volumes[0]: 'path' does not apply to the loop backend"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "command"}]}]}"#, "daemons[0].volumes[0]: the command backend needs 'command'"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop", "chunk": "lots"}]}]}"#, "daemons[0].volumes[0].chunk: expected a positive size"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop", "chunk": 0}]}]}"#, "daemons[0].volumes[0].chunk: expected a positive size"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop", "utilization": 100}]}]}"#, "daemons[0].volumes[0].utilization: expected a percentage from 0 to 99"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop", "chnk": 1}]}]}"#, "daemons[0].volumes[0]: unknown member 'chnk'"),
        (#"{"daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop"}, {"node-name": "v", "backend": "file"}]}]}"#, "daemons[0].volumes[1]: node 'v' is listed twice for unix:q"),
        (#"{"metrics": "9100", "daemons": []}"#, "configuration.metrics: expected \"HOST:PORT\""),
        (#"{"retry-initial-ms": 10, "retry-maximum-ms": 5, "daemons": [{"qmp": "q", "volumes": [{"node-name": "v", "backend": "loop"}]}]}"#, "configuration: 'retry-maximum-ms' is below 'retry-initial-ms'"),
    ])
    func badConfigurationsSayWhereAndWhy(json: String, message: String) {
        #expect(throws: ConfigurationError(message)) { try AutoExtendConfiguration.parse(json: json) }
    }

    @Test func positiveSizesRefuseZeroAndNonsense() {
        #expect(AutoExtendConfiguration.positiveSize("64M") == 64 << 20)
        #expect(AutoExtendConfiguration.positiveSize("512") == 512)
        #expect(AutoExtendConfiguration.positiveSize("0") == nil)
        #expect(AutoExtendConfiguration.positiveSize("lots") == nil)
    }

    @Test func addressesOfMetrics() {
        #expect(MetricsAddress("0.0.0.0:9100")?.description == "0.0.0.0:9100")
        #expect(MetricsAddress("[::]:0")?.description == "[::]:0")
        #expect(MetricsAddress(":9100") == nil)
    }
}
