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

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
}
