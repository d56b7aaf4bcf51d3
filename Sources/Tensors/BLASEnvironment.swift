import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Makes sure OpenBLAS runs the kernels this CPU deserves.
///
/// Debian's OpenBLAS 0.3.21 can mis-detect recent x86 CPUs and fall back to Prescott kernels (about a
/// fifth of the speed). OpenBLAS reads `OPENBLAS_CORETYPE` only while the library initialises, which
/// happens before `main`, so setting it from inside the process is too late: we set it and re-execute
/// ourselves once. A value already in the environment is always respected.
public enum BLASEnvironment {
    /// The OpenBLAS core name suited to this CPU, from its feature flags, or nil when unknown.
    public static func preferredCore() -> String? {
        #if arch(x86_64)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
        // Cooper Lake CPUs also get SKYLAKEX: 0.3.21's COOPERLAKE sgemm measured ~40% slower here.
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl"]) { return "SKYLAKEX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "HASWELL" }
        return nil
        #else
        return nil
        #endif
    }

    /// Re-executes the current program with `OPENBLAS_CORETYPE` set when OpenBLAS picked a weaker core than
    /// the CPU supports. Returns normally when nothing needs doing (or re-execution is impossible).
    public static func ensurePreferredCore() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SAFENEURON_BLAS_REEXEC") == nil,
              let want = preferredCore() else { return }
        if BLAS.coreName.lowercased() == want.lowercased() { return }
        setenv("OPENBLAS_CORETYPE", want, 1)
        setenv("SAFENEURON_BLAS_REEXEC", "1", 1)
        var args = CommandLine.arguments.map { strdup($0) }
        args.append(nil)
        execv("/proc/self/exe", &args)
        // execv only returns on failure: carry on with whatever kernels we have.
    }
}
