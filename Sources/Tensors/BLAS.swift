import COpenBLAS

/// Row-major single-precision matrix products through OpenBLAS.
///
/// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major.
/// `transA`/`transB` say whether A is stored k×m / B is stored n×k.
public enum BLAS {
    @inlinable
    public static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if splitting, Parallel.depth == 0, Parallel.workers > 1, m * n * k >= splitMinimumWork {
            splitSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha,
                    a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// y = W·x for W stored row-major [rows × cols] (a "Linear" weight), batched over `count` vectors:
    /// out[count × rows] = x[count × cols] · Wᵀ (+ out when `accumulate`).
    @inlinable
    public static func linear(
        _ x: UnsafePointer<Float>, count: Int, inFeatures: Int,
        weight: UnsafePointer<Float>, outFeatures: Int,
        into out: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        sgemm(transA: false, transB: true, m: count, n: outFeatures, k: inFeatures,
              a: x, lda: inFeatures, b: weight, ldb: inFeatures,
              beta: accumulate ? 1 : 0, c: out, ldc: outFeatures)
    }

    /// The name of the kernel family OpenBLAS selected at load time (e.g. "SkylakeX", "Prescott").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    public static func setThreads(_ n: Int) { if !splitting { openblas_set_num_threads(Int32(n)) } }

    /// When set, OpenBLAS runs single-threaded and each large product is cut into one slice per worker,
    /// run through `Parallel` (blocking waits). OpenBLAS's own threads spin in `sched_yield` between
    /// calls, stealing the cores from our kernels in between.
    public nonisolated(unsafe) static var splitting: Bool = false {
        didSet { openblas_set_num_threads(splitting ? 1 : Int32(Parallel.workers)) }
    }
    /// m·n·k below which a product runs on one thread (a hand-off costs more than it saves).
    public nonisolated(unsafe) static var splitMinimumWork = 1 << 21

    @usableFromInline
    static func splitSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        let parts = Parallel.workers
        if n >= 64 * parts {
            // Column slices of C: B's columns (rows when transposed) move, A is shared.
            let per = ((n + parts - 1) / parts + 15) / 16 * 16
            Parallel.forEach(parts) { p in
                let lo = p * per, hi = min(n, lo + per)
                if lo >= hi { return }
                cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(hi - lo), blasint(k), alpha,
                            a, blasint(lda), b + (transB ? lo * ldb : lo), blasint(ldb), beta, c + lo, blasint(ldc))
            }
        } else {
            let per = (m + parts - 1) / parts
            Parallel.forEach(parts) { p in
                let lo = p * per, hi = min(m, lo + per)
                if lo >= hi { return }
                cblas_sgemm(CblasRowMajor, ta, tb, blasint(hi - lo), blasint(n), blasint(k), alpha,
                            a + (transA ? lo : lo * lda), blasint(lda), b, blasint(ldb), beta, c + lo * ldc, blasint(ldc))
            }
        }
    }
}
