#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise and row-wise float kernels used by the transformer forward pass.
///
/// All work on raw pointers so callers can point them at slices of reusable scratch buffers;
/// none allocates. Row-wise kernels split rows across `Parallel` workers when the job is big enough
/// to pay for the hand-off (they are never called while OpenBLAS is running).
public enum Kernels {
    public typealias V16 = SIMD16<Float>

    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V16 {
        UnsafeRawPointer(p).loadUnaligned(as: V16.self)
    }

    @inlinable @inline(__always)
    static func store(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
    }

    /// Vector e^x (Cephes-style: 2^n · p(r), |r| ≤ ln2/2, degree-6 polynomial; ~1–2 ulp).
    /// Inputs are clamped to the finite range, so -inf gives ~1e-38, never NaN.
    /// Only lane-wise +, ×, compare-select and bit casts: those lower to vector instructions, whereas
    /// SIMD `rounded()`/float→int conversions go lane by lane through libm.
    @inlinable @inline(__always)
    public static func exp(_ x: V16) -> V16 {
        let lo = V16(repeating: -87.33), hi = V16(repeating: 88.37)
        var x = x.replacing(with: lo, where: .!(x .>= lo))   // also maps NaN to lo
        x = x.replacing(with: hi, where: x .> hi)
        // Adding 1.5·2^23 rounds to nearest-even and leaves n in the low mantissa bits.
        let magic = V16(repeating: 12582912)
        let t = x * 1.44269504088896341 + magic
        let n = t - magic
        let r = x - n * 0.693359375 + n * 2.12194440e-4
        var p = V16(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let bits = (ni &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V16.self)
    }

    /// Scalar e^x with the same polynomial as the vector version, for tails.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(V16(repeating: x))[0]
    }

    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = V16()
        var i = 0
        while i + 16 <= count { acc += load(a + i) * load(b + i); i += 16 }
        var s = acc.sum()
        while i < count { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y += alpha · x
    @inlinable
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let va = V16(repeating: alpha)
        var i = 0
        while i + 16 <= count { store(load(y + i) + va * load(x + i), y + i); i += 16 }
        while i < count { y[i] += alpha * x[i]; i += 1 }
    }

    /// y += x
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: 1 << 16) { r in
            var i = r.lowerBound
            while i + 16 <= r.upperBound { store(load(y + i) + load(x + i), y + i); i += 16 }
            while i < r.upperBound { y[i] += x[i]; i += 1 }
        }
    }

    /// Adds `bias[dim]` to each of `rows` rows (row stride `stride`, default `dim`).
    public static func addBias(_ bias: UnsafePointer<Float>, rows: Int, dim: Int, to y: UnsafeMutablePointer<Float>, stride: Int? = nil) {
        let ld = stride ?? dim
        for r in 0..<rows {
            let row = y + r * ld
            var i = 0
            while i + 16 <= dim { store(load(row + i) + load(bias + i), row + i); i += 16 }
            while i < dim { row[i] += bias[i]; i += 1 }
        }
    }

    /// RMSNorm in f32, the one implementation inference and training share:
    /// out = (offset + w) · (x · 1/sqrt(mean(x²) + eps)) per row, with offset 0 for Llama's w·x̂ and 1 for Gemma's
    /// (1 + w)·x̂ (transformers computes `1.0 + weight` in f32 too). `rstd`, when given, receives 1/sqrt(mean + eps)
    /// per row for the backward pass. `out` may alias `x`.
    public static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, dim: Int, weight: UnsafePointer<Float>,
                               weightOffset: Float = 0, eps: Float, into out: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>? = nil) {
        Parallel.forRanges(rows, minChunk: max(1, 16384 / max(1, dim))) { range in
            let offset = V16(repeating: weightOffset)
            for r in range {
                let xr = x + r * dim, o = out + r * dim
                var acc = V16()
                var i = 0
                while i + 16 <= dim { let v = load(xr + i); acc += v * v; i += 16 }
                var ss = acc.sum()
                while i < dim { ss += xr[i] * xr[i]; i += 1 }
                let inv = 1 / (ss / Float(dim) + eps).squareRoot()
                rstd?[r] = inv
                let vinv = V16(repeating: inv)
                i = 0
                while i + 16 <= dim { store((offset + load(weight + i)) * (load(xr + i) * vinv), o + i); i += 16 }
                while i < dim { o[i] = (weightOffset + weight[i]) * (xr[i] * inv); i += 1 }
            }
        }
    }

    /// The gate nonlinearity of a gated MLP.
    public enum GateActivation: Sendable {
        /// silu(g) = g / (1 + e^-g)
        case silu
        /// PyTorch's tanh-approximated GELU, g · ½(1 + tanh(√(2/π)(g + 0.044715 g³))), written as
        /// g / (1 + e^(−2u)) with u the tanh argument: the same function without cancellation for large negative g.
        case geluTanh
    }

    /// √(2/π) and the cubic coefficient of the tanh GELU.
    public static let geluBeta: Float = 0.7978845608028654, geluKappa: Float = 0.044715

    /// out[t, j] = act(gate[t, j]) · up[t, j] over [rows × dim], with the listed columns forced to 0 (an ablation
    /// of MLP neurons). `out` may alias `gate`.
    public static func gatedActivation(_ kind: GateActivation, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                       into out: UnsafeMutablePointer<Float>, rows: Int, dim: Int, zeroColumns: [Int] = []) {
        zeroColumns.withUnsafeBufferPointer { ab in
            Parallel.forRanges(rows, minChunk: max(1, 16384 / max(1, dim))) { r in
                let one = V16(repeating: 1), two = V16(repeating: 2)
                let beta = V16(repeating: geluBeta), kappa = V16(repeating: geluKappa)
                for t in r {
                    let g = gate + t * dim, u = up + t * dim, o = out + t * dim
                    var i = 0
                    switch kind {
                    case .silu:
                        while i + 16 <= dim { let x = load(g + i); store(x / (one + exp(-x)) * load(u + i), o + i); i += 16 }
                        while i < dim { let x = g[i]; o[i] = x / (1 + exp(-x)) * u[i]; i += 1 }
                    case .geluTanh:
                        while i + 16 <= dim {
                            let x = load(g + i), inner = beta * (x + kappa * x * x * x)
                            store(x / (one + exp(-two * inner)) * load(u + i), o + i)
                            i += 16
                        }
                        while i < dim {
                            let x = g[i], inner = geluBeta * (x + geluKappa * x * x * x)
                            o[i] = x / (1 + exp(-2 * inner)) * u[i]
                            i += 1
                        }
                    }
                    for j in ab { o[j] = 0 }
                }
            }
        }
    }

    /// In-place softmax over `count` values with max subtraction.
    @inlinable
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        if count <= 0 { return }
        var m = -Float.infinity
        for i in 0..<count where x[i] > m { m = x[i] }
        let vm = V16(repeating: m)
        var acc = V16()
        var i = 0
        while i + 16 <= count { let e = exp(load(x + i) - vm); store(e, x + i); acc += e; i += 16 }
        var s = acc.sum()
        while i < count { let e = exp(x[i] - m); x[i] = e; s += e; i += 1 }
        let inv = 1 / s
        let vinv = V16(repeating: inv)
        i = 0
        while i + 16 <= count { store(load(x + i) * vinv, x + i); i += 16 }
        while i < count { x[i] *= inv; i += 1 }
    }

    /// log Σ e^x computed in Double (max-subtracted), for log-probabilities over a vocabulary.
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        if count <= 0 { return -.infinity }
        var m = -Float.infinity
        for i in 0..<count where x[i] > m { m = x[i] }
        if !m.isFinite { return Double(m) }
        var s = 0.0
        for i in 0..<count { s += Glibc.exp(Double(x[i] - m)) }
        return Double(m) + Glibc.log(s)
    }

    /// Index of the largest value; ties go to the lowest index (like torch.argmax). NaN counts as largest.
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        if count <= 0 { return 0 }
        var best = 0
        var bv = x[0]
        if bv.isNaN { return 0 }
        for i in 1..<count {
            let v = x[i]
            if v.isNaN { return i }
            if v > bv { bv = v; best = i }
        }
        return best
    }

    /// out[i] = table[indices[i]] for rows of `rowLength` floats. Indices must be in range (callers validate).
    public static func gatherRows(_ table: UnsafePointer<Float>, rowLength: Int, indices: UnsafeBufferPointer<Int>,
                                  into out: UnsafeMutablePointer<Float>) {
        for (i, idx) in indices.enumerated() {
            (out + i * rowLength).update(from: table + idx * rowLength, count: rowLength)
        }
    }

    /// Zeroes the listed columns of each row (an ablation of MLP neurons).
    public static func zeroColumns(_ x: UnsafeMutablePointer<Float>, rows: Int, stride: Int, columns: UnsafeBufferPointer<Int>) {
        if columns.isEmpty { return }
        for r in 0..<rows {
            let row = x + r * stride
            for c in columns { row[c] = 0 }
        }
    }

    /// Splits each row of `source` ([rows × Σ widths]) into the parts' own contiguous [rows × width] buffers.
    public static func splitColumns(_ source: UnsafePointer<Float>, rows: Int,
                                    into parts: [(UnsafeMutablePointer<Float>, Int)]) {
        let width = parts.reduce(0) { $0 + $1.1 }
        parts.withUnsafeBufferPointer { ps in
            Parallel.forRanges(rows, minChunk: 64) { r in
                for row in r {
                    var col = 0
                    for (dst, w) in ps {
                        (dst + row * w).update(from: source + row * width + col, count: w)
                        col += w
                    }
                }
            }
        }
    }
}
