import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one place our own kernels get their parallelism from.
/// `concurrentPerform` blocks (no spinning), which matters on shared 2-core machines.
public enum Parallel {
    /// Number of worker threads our kernels split work across.
    public nonisolated(unsafe) static var workers: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Parallel regions open on the orchestrating thread; work inside one must not fan out again.
    public static var depth: Int { openRegions.load(ordering: .relaxed) }
    @usableFromInline static let openRegions = Atomic<Int>(0)

    /// Runs `body(range)` over `0..<count` split into contiguous chunks, one per worker.
    /// Small jobs run inline: a thread hand-off costs more than it saves.
    @inlinable
    public static func forRanges(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workers, max(1, count / max(1, minChunk)))
        if chunks <= 1 { body(0..<count); return }
        let per = (count + chunks - 1) / chunks
        openRegions.wrappingAdd(1, ordering: .relaxed)
        defer { openRegions.wrappingSubtract(1, ordering: .relaxed) }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    /// Runs `body(i)` for each `i` in `0..<count`, spread across the workers.
    @inlinable
    public static func forEach(_ count: Int, minChunk: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, minChunk: minChunk) { r in for i in r { body(i) } }
    }

    /// Like `forRanges`, but also hands out the chunk index (0..<workers) so callers can give each
    /// chunk its own slice of a preallocated scratch buffer instead of allocating per task.
    @inlinable
    public static func forChunks(_ count: Int, minChunk: Int = 1, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(workers, max(1, count / max(1, minChunk)))
        if chunks <= 1 { body(0, 0..<count); return }
        let per = (count + chunks - 1) / chunks
        openRegions.wrappingAdd(1, ordering: .relaxed)
        defer { openRegions.wrappingSubtract(1, ordering: .relaxed) }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * per, hi = min(count, lo + per)
                if lo < hi { body(c, lo..<hi) }
            }
        }
    }
}
