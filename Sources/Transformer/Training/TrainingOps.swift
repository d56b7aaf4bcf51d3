import Foundation
import Tensors

/// Forward and backward of each training op as plain functions over flat row-major buffers.
/// Shapes are written at the top of each function; T = packed token rows, backward passes
/// ACCUMULATE (+=) into parameter gradients and, where noted, into input gradients.
enum TrainOps {
    // MARK: Embedding

    /// out[T×H] = table[ids[t]] · scale (Gemma scales its embeddings by √hidden)
    static func embeddingForward(_ out: UnsafeMutablePointer<Float>, ids: [Int32], table: UnsafePointer<Float>, hidden H: Int,
                                 scale: Float? = nil) {
        ids.withUnsafeBufferPointer { ids in
            Parallel.forRanges(ids.count, minChunk: 64) { r in
                for t in r {
                    let o = out + t * H
                    o.update(from: table + Int(ids[t]) * H, count: H)
                    if let scale { for i in 0..<H { o[i] *= scale } }
                }
            }
        }
    }

    /// dtable[ids[t]] += dout[t] · scale   (serial: repeated ids would race)
    static func embeddingBackward(_ dtable: UnsafeMutablePointer<Float>, ids: [Int32], dout: UnsafePointer<Float>, hidden H: Int,
                                  scale: Float? = nil) {
        let s = scale ?? 1
        for (t, id) in ids.enumerated() {
            let d = dtable + Int(id) * H, g = dout + t * H
            for i in 0..<H { d[i] += g[i] * s }
        }
    }

    // MARK: RMSNorm backward (the forward is `Kernels.rmsNorm`, shared with inference)

    /// dout[T×H] → dx[T×H] (+=), dw[H] (+=) for out = (offset + w)·x̂. Needs x and rstd from the forward.
    static func rmsnormBackward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>, weightOffset: Float = 0,
                                rstd: UnsafePointer<Float>, rows T: Int, dim H: Int) {
        // dx is row-parallel; dw is reduced per worker chunk then summed, so no two threads write one cell.
        let workers = max(1, min(Parallel.workers, T / 32))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * H)
        partial.initialize(repeating: 0, count: workers * H)
        defer { partial.deallocate() }
        let per = (T + workers - 1) / max(1, workers)
        Parallel.forEach(workers) { c in
            let vo = Vec.V(repeating: weightOffset)
            let lo = c * per, hi = min(T, lo + per)
            if lo >= hi { return }
            let pw = partial + c * H
            for t in lo..<hi {
                let xr = x + t * H, g = dout + t * H, d = dx + t * H
                let s = rstd[t], vs = Vec.V(repeating: s)
                var acc = Vec.V()
                var i = 0
                while i + 16 <= H {
                    let xn = Vec.load(xr + i) * vs, gi = Vec.load(g + i)
                    Vec.store(Vec.load(pw + i) + gi * xn, pw + i)
                    acc += gi * (vo + Vec.load(w + i)) * xn
                    i += 16
                }
                var dot = acc.sum()
                while i < H { let xn = xr[i] * s; pw[i] += g[i] * xn; dot += g[i] * (weightOffset + w[i]) * xn; i += 1 }
                let m = dot / Float(H), vm = Vec.V(repeating: m)
                i = 0
                while i + 16 <= H {
                    Vec.store(Vec.load(d + i) + vs * (Vec.load(g + i) * (vo + Vec.load(w + i)) - Vec.load(xr + i) * vs * vm), d + i)
                    i += 16
                }
                while i < H { d[i] += s * (g[i] * (weightOffset + w[i]) - xr[i] * s * m); i += 1 }
            }
        }
        for c in 0..<workers { for i in 0..<H { dw[i] += partial[c * H + i] } }
    }

    // MARK: Linear (y = x·Wᵀ + b, W [out×in])

    /// x[T×in] → y[T×out]
    static func linearForward(_ y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, rows T: Int, inDim: Int, outDim: Int) {
        BLAS.linear(x, count: T, inFeatures: inDim, weight: w, outFeatures: outDim, into: y)
        if let bias {
            Parallel.forRanges(T, minChunk: 64) { r in
                for t in r { let yr = y + t * outDim; for o in 0..<outDim { yr[o] += bias[o] } }
            }
        }
    }

    /// dy[T×out] → dx[T×in] (+= when accumulateDx, else overwrite), dW[out×in] +=, db[out] +=
    static func linearBackward(dx: UnsafeMutablePointer<Float>?, accumulateDx: Bool, dw: UnsafeMutablePointer<Float>?,
                               db: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                               w: UnsafePointer<Float>, rows T: Int, inDim: Int, outDim: Int) {
        if let dx {
            BLAS.sgemm(m: T, n: inDim, k: outDim, a: dy, lda: outDim, b: w, ldb: inDim,
                       beta: accumulateDx ? 1 : 0, c: dx, ldc: inDim)
        }
        if let dw {
            BLAS.sgemm(transA: true, m: outDim, n: inDim, k: T, a: dy, lda: outDim, b: x, ldb: inDim,
                       beta: 1, c: dw, ldc: inDim)
        }
        if let db { for t in 0..<T { let g = dy + t * outDim; for o in 0..<outDim { db[o] += g[o] } } }
    }

    // MARK: Gated MLP activation backward (the forward is `Kernels.gatedActivation`, shared with inference)

    /// dh[T×I] → dgate[T×I], dup[T×I] (overwrite; dup may alias dh) for h = act(gate)·up.
    /// silu: act' = σ(g)(1 + g(1 − σ(g))). GELU-tanh, act = g·σ(2u) with u = β(g + κg³):
    /// act' = σ(2u) + 2g·σ(2u)(1 − σ(2u))·β(1 + 3κg²). Ablated columns are constants: zero grads.
    static func gatedActivationBackward(_ kind: Kernels.GateActivation, dgate: UnsafeMutablePointer<Float>,
                                        dup: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>,
                                        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, rows T: Int, dim I: Int, ablated: [Int]) {
        ablated.withUnsafeBufferPointer { ab in
            Parallel.forRanges(T, minChunk: 16) { r in
                let one = Vec.V(repeating: 1), two = Vec.V(repeating: 2), three = Vec.V(repeating: 3)
                let beta = Vec.V(repeating: Kernels.geluBeta), kappa = Vec.V(repeating: Kernels.geluKappa)
                for t in r {
                    let g = gate + t * I, u = up + t * I, d = dh + t * I, dg = dgate + t * I, du = dup + t * I
                    var i = 0
                    switch kind {
                    case .silu:
                        while i + 16 <= I {
                            let x = Vec.load(g + i), sig = one / (one + Kernels.exp(-x)), gi = Vec.load(d + i)
                            Vec.store(gi * Vec.load(u + i) * sig * (one + x * (one - sig)), dg + i)
                            Vec.store(gi * (x * sig), du + i)
                            i += 16
                        }
                        while i < I {
                            let x = g[i], sig = 1 / (1 + Kernels.exp(-x)), gi = d[i]
                            dg[i] = gi * u[i] * sig * (1 + x * (1 - sig))
                            du[i] = gi * (x * sig)
                            i += 1
                        }
                    case .geluTanh:
                        while i + 16 <= I {
                            let x = Vec.load(g + i), gi = Vec.load(d + i)
                            let x2 = x * x, inner = beta * (x + kappa * x2 * x)
                            let sig = one / (one + Kernels.exp(-two * inner))
                            let slope = sig + two * x * sig * (one - sig) * beta * (one + three * kappa * x2)
                            Vec.store(gi * Vec.load(u + i) * slope, dg + i)
                            Vec.store(gi * (x * sig), du + i)
                            i += 16
                        }
                        while i < I {
                            let x = g[i], gi = d[i], x2 = x * x
                            let inner = Kernels.geluBeta * (x + Kernels.geluKappa * x2 * x)
                            let sig = 1 / (1 + Kernels.exp(-2 * inner))
                            let slope = sig + 2 * x * sig * (1 - sig) * Kernels.geluBeta * (1 + 3 * Kernels.geluKappa * x2)
                            dg[i] = gi * u[i] * slope
                            du[i] = gi * (x * sig)
                            i += 1
                        }
                    }
                    for j in ab { dg[j] = 0; du[j] = 0 }
                }
            }
        }
    }
}

/// 16-lane helpers for the training kernels (Kernels' load/store are internal to Tensors).
enum Vec {
    typealias V = SIMD16<Float>
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(), i = 0
        while i + 16 <= n { acc += load(a + i) * load(b + i); i += 16 }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    @inline(__always) static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V(repeating: -.infinity), i = 0
        // Compare-select lowers to vector max; pointwiseMax goes lane by lane through memory.
        while i + 16 <= n { let v = load(x + i); acc = acc.replacing(with: v, where: v .> acc); i += 16 }
        var m = acc.max()
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// x[j] ← e^(x[j] − shift); returns Σ of the new values.
    @inline(__always) @discardableResult
    static func expShift(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) -> Float {
        let vs = V(repeating: shift)
        var acc = V(), i = 0
        while i + 16 <= n { let e = Kernels.exp(load(x + i) - vs); store(e, x + i); acc += e; i += 16 }
        var s = acc.sum()
        while i < n { let e = Kernels.exp(x[i] - shift); x[i] = e; s += e; i += 1 }
        return s
    }

    /// x[j] ← a · x[j]
    @inline(__always) static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float) {
        let va = V(repeating: a)
        var i = 0
        while i + 16 <= n { store(load(x + i) * va, x + i); i += 16 }
        while i < n { x[i] *= a; i += 1 }
    }

    /// x[j] ← a · (x[j] − b)
    @inline(__always) static func scaleShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float, _ b: Float) {
        let va = V(repeating: a), vb = V(repeating: b)
        var i = 0
        while i + 16 <= n { store(va * (load(x + i) - vb), x + i); i += 16 }
        while i < n { x[i] = a * (x[i] - b); i += 1 }
    }
}
