/// One managed volume: the daemon's protocol node for it and how it grows.
public struct VolumeConfiguration: Sendable, Equatable {
    public var nodeName: String
    public var backend: BackendConfiguration
    public var chunk: UInt64
    public var utilizationPercent: UInt64
    /// The size never to exceed; when nil, taken from the image on the volume: its virtual
    /// size plus 10 % for a qcow2 image, its size for a raw one.
    public var maximum: UInt64?

    public init(
        nodeName: String, backend: BackendConfiguration, chunk: UInt64 = ExtendPolicy.defaultChunk,
        utilizationPercent: UInt64 = ExtendPolicy.defaultUtilizationPercent, maximum: UInt64? = nil
    ) {
        self.nodeName = nodeName
        self.backend = backend
        self.chunk = chunk
        self.utilizationPercent = utilizationPercent
        self.maximum = maximum
    }
}
