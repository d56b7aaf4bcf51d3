#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rotary position embedding in Hugging Face's `rotate_half` convention: the one implementation inference and
/// training share.
///
/// The frequencies are computed in f32 with the same operation order as transformers
/// (`inv_freq = 1 / theta ** (arange(0, dim, 2) / dim)`; `llama3` scaling as in `_compute_llama3_parameters`,
/// `linear` as `inv_freq / factor`; `freqs = float(position) · inv_freq`), so cos/sin tables match HF to the
/// last ulp or two. Tables grow on demand; not safe for concurrent `reserve`.
public final class RotaryEmbedding: @unchecked Sendable {
    public struct Llama3Scaling: Sendable, Equatable {
        public var factor: Double
        public var lowFreqFactor: Double
        public var highFreqFactor: Double
        public var originalMaxPositionEmbeddings: Int
        public init(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int) {
            self.factor = factor; self.lowFreqFactor = lowFreqFactor; self.highFreqFactor = highFreqFactor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }
    }

    /// How the base frequencies are rescaled for longer contexts.
    public enum Scaling: Sendable, Equatable {
        case llama3(Llama3Scaling)
        /// Positions divided by `factor` (Gemma 3's global layers in the larger models).
        case linear(factor: Double)
    }

    public let headDim: Int
    public let invFreq: [Float]
    private var cosTable: UnsafeMutablePointer<Float>   // [capacity × headDim/2]
    private var sinTable: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int = 0

    public convenience init(headDim: Int, theta: Double, llama3: Llama3Scaling? = nil, initialPositions: Int = 256) {
        self.init(headDim: headDim, theta: theta, scaling: llama3.map { .llama3($0) }, initialPositions: initialPositions)
    }

    public init(headDim: Int, theta: Double, scaling: Scaling?, initialPositions: Int = 256) {
        precondition(headDim > 0 && headDim % 2 == 0, "head_dim must be positive and even")
        self.headDim = headDim
        invFreq = Self.inverseFrequencies(headDim: headDim, theta: theta, scaling: scaling)
        cosTable = .allocate(capacity: 1)
        sinTable = .allocate(capacity: 1)
        reserve(positions: max(1, initialPositions))
    }

    deinit { cosTable.deallocate(); sinTable.deallocate() }

    public static func inverseFrequencies(headDim dim: Int, theta: Double, scaling: Scaling?) -> [Float] {
        let base = Float(theta)
        var inv = (0..<(dim / 2)).map { i -> Float in
            let e = Float(2 * i) / Float(dim)
            return 1 / powf(base, e)
        }
        switch scaling {
        case nil: return inv
        case .linear(let factor):
            let f = Float(factor)
            return inv.map { $0 / f }
        case .llama3(let s):
            let old = Float(s.originalMaxPositionEmbeddings)
            let lowWavelen = Float(Double(s.originalMaxPositionEmbeddings) / s.lowFreqFactor)
            let highWavelen = Float(Double(s.originalMaxPositionEmbeddings) / s.highFreqFactor)
            let factor = Float(s.factor), low = Float(s.lowFreqFactor), span = Float(s.highFreqFactor - s.lowFreqFactor)
            let twoPi = Float(2 * Double.pi)
            for i in inv.indices {
                let f = inv[i]
                let wavelen = twoPi / f
                var scaled = wavelen > lowWavelen ? f / factor : f
                if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
                    let smooth = (old / wavelen - low) / span
                    scaled = (1 - smooth) * scaled / factor + smooth * scaled
                }
                inv[i] = scaled
            }
            return inv
        }
    }

    /// Table row of position `p` (cos, then sin), for kernels outside this type (the training backward).
    public func tables(position p: Int) -> (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        (cosPointer(p), sinPointer(p))
    }

    /// Makes the cos/sin tables cover positions 0..<positions.
    public func reserve(positions: Int) {
        if positions <= capacity { return }
        let newCap = max(positions, capacity * 2)
        let half = headDim / 2
        let c = UnsafeMutablePointer<Float>.allocate(capacity: newCap * half)
        let s = UnsafeMutablePointer<Float>.allocate(capacity: newCap * half)
        if capacity > 0 {
            c.update(from: cosTable, count: capacity * half)
            s.update(from: sinTable, count: capacity * half)
        }
        for p in capacity..<newCap {
            for i in 0..<half {
                // The angle is rounded to f32 as in torch; its cos/sin are then rounded once from double.
                let f = Float(p) * invFreq[i]
                c[p * half + i] = Float(cos(Double(f)))
                s[p * half + i] = Float(sin(Double(f)))
            }
        }
        cosTable.deallocate(); sinTable.deallocate()
        cosTable = c; sinTable = s; capacity = newCap
    }

    /// Rotates `heads` consecutive head vectors (each `headDim` floats) of one row at `position`.
    /// x[i] ← x[i]·cos − x[i+half]·sin, x[i+half] ← x[i+half]·cos + x[i]·sin; `inverse` rotates back (the
    /// backward of a rotation is the inverse rotation of the gradient).
    @inlinable
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int, inverse: Bool = false) {
        let half = headDim / 2
        let c = cosPointer(position), s = sinPointer(position)
        let sign: Float = inverse ? -1 : 1
        for h in 0..<heads {
            let a = x + h * headDim, b = a + half
            for i in 0..<half {
                let x1 = a[i], x2 = b[i], si = sign * s[i]
                a[i] = x1 * c[i] + (-x2) * si
                b[i] = x2 * c[i] + x1 * si
            }
        }
    }

    /// Applies RoPE to `rows` rows (row stride `stride`, each holding `heads` heads) at `positions[r]`.
    /// Call `reserve(positions:)` with max position + 1 first.
    public func apply<P: BinaryInteger>(rows: Int, _ x: UnsafeMutablePointer<Float>, stride: Int, heads: Int,
                                        positions: UnsafePointer<P>, inverse: Bool = false) {
        Parallel.forRanges(rows, minChunk: max(1, 4096 / max(1, heads * headDim))) { range in
            for r in range { self.apply(x + r * stride, heads: heads, position: Int(positions[r]), inverse: inverse) }
        }
    }

    @usableFromInline func cosPointer(_ p: Int) -> UnsafePointer<Float> {
        precondition(p >= 0 && p < capacity, "position \(p) outside RoPE table (reserve first)")
        return UnsafePointer(cosTable + p * (headDim / 2))
    }

    @usableFromInline func sinPointer(_ p: Int) -> UnsafePointer<Float> {
        UnsafePointer(sinTable + p * (headDim / 2))
    }
}
