import Foundation

/// Where the set-up put the default model and datasets (`vendor-data/`) and where our own data lives (`data/`).
///
/// Resolution order: `$SAFENEURON_HOME` (a checkout root), then the checkout that contains the running
/// binary (`.build/<config>/safeneuron` sits two folders below it), then the current directory.
public enum DataPaths {
    public static let defaultModelRelative = "vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf"

    public static var root: URL {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["SAFENEURON_HOME"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        }
        for _ in 0..<6 {
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path),
               fm.fileExists(atPath: dir.appendingPathComponent("data").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: fm.currentDirectoryPath, isDirectory: true)
    }

    public static var vendorData: URL { root.appendingPathComponent("vendor-data", isDirectory: true) }

    public static var projectData: URL { root.appendingPathComponent("data", isDirectory: true) }

    public static var defaultModel: String {
        vendorData.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }
}
