import QMPClient

/// One daemon's QMP monitor and the volumes managed on it.
public struct DaemonConfiguration: Sendable, Equatable {
    public var address: QMPAddress
    public var volumes: [VolumeConfiguration]

    public init(address: QMPAddress, volumes: [VolumeConfiguration]) {
        self.address = address
        self.volumes = volumes
    }
}
