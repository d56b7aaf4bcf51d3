import Foundation
import XCTest

enum TestPaths {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = testsDir.appendingPathComponent("Fixtures")
    /// Repository root (Tests/EvaluationTests/ → ../..).
    static let repoRoot = testsDir.deletingLastPathComponent().deletingLastPathComponent()

    static func tempDir(_ name: String = #function) throws -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("safeneuron-eval-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    static func write(_ text: String, _ name: String, in dir: URL) throws -> URL {
        let u = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: u)
        return u
    }
}
