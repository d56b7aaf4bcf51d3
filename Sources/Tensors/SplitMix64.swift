/// SplitMix64 (Steele, Lea & Flood 2014): the project's one seeded generator for reproducible choices (training
/// order and ablation draws, bootstrap resamples). Its whole state is one UInt64, so it checkpoints as one number,
/// and its output for a seed is fixed here, independent of the standard library.
public struct SplitMix64: RandomNumberGenerator, Codable, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// Independent streams of one seed (one per prompt of a sampled batch, one per use in a run): the stream index
    /// is mixed into the starting state through the generator's own output function.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = mixer.next() ^ stream
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
    public mutating func nextUnit() -> Double { nextDouble() }

    /// Uniform in 0..<bound without modulo bias (Lemire's multiply-and-reject), so draws do not depend on how the
    /// standard library implements `random(in:)`.
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let t = (0 &- bound) % bound
            while m.low < t { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }
}
