import Foundation
import Runtime

/// Runs the pipeline's stages, each at most once: a stage whose outputs exist was finished by an earlier
/// (possibly killed) run and is skipped. Heavy stages run as child processes of this same binary with the
/// ordinary subcommands, so every arrow of the pipeline is a file a user can inspect or rerun by hand,
/// and each stage's memory is returned when it ends. Wall times go to `stages.json`.
public final class StageRunner {
    public let runDir: String
    private var timings: [[String: Any]] = []
    private let timingsPath: String

    public init(runDir: String) throws {
        self.runDir = runDir
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        timingsPath = runDir + "/stages.json"
        if let data = FileManager.default.contents(atPath: timingsPath),
           let old = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] { timings = old }
    }

    public var stageTimes: [[String: Any]] { timings }

    public static func isDone(_ outputs: [String]) -> Bool {
        outputs.allSatisfy { FileManager.default.fileExists(atPath: $0) }
    }

    /// Runs `safeneuron <arguments>` unless all `outputs` exist. Throws when the child fails.
    public func command(_ name: String, outputs: [String], _ arguments: [String]) throws {
        try stage(name, outputs: outputs) { try Self.runSelf(arguments) }
    }

    /// Runs `body` unless all `outputs` exist, recording its wall time.
    public func stage(_ name: String, outputs: [String], _ body: () throws -> Void) throws {
        if Self.isDone(outputs) {
            Progress.note("run: \(name): done earlier, skipped")
            return
        }
        Progress.note("run: \(name) …")
        let start = Date()
        try body()
        let seconds = Date().timeIntervalSince(start)
        timings.removeAll { ($0["stage"] as? String) == name }
        timings.append(["stage": name, "seconds": (seconds * 10).rounded() / 10])
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: timings, options: [.prettyPrinted, .sortedKeys]), to: timingsPath)
        Progress.note(String(format: "run: %@ finished in %@", name, Progress.clock(seconds)))
    }

    /// Runs this executable with `arguments`, passing stderr through; throws on a non-zero exit.
    public static func runSelf(_ arguments: [String]) throws {
        let p = Process()
        // A rebuilt binary replaces ours on disk mid-run; the kernel then reports our path as "… (deleted)",
        // and the new binary at that path is the one to run.
        var exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if exe.hasSuffix(" (deleted)") { exe = String(exe.dropLast(" (deleted)".count)) }
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationReason == .exit, p.terminationStatus == 0 else {
            throw RuntimeError.io(path: "safeneuron " + arguments.prefix(2).joined(separator: " "),
                                  reason: "stage failed (\(p.terminationReason == .exit ? "exit \(p.terminationStatus)" : "signal \(p.terminationStatus)")): safeneuron \(arguments.joined(separator: " "))")
        }
    }
}
