import Crypto
import Foundation

/// SHA-256 of prompts, judge inputs and model files, streamed. The hashing is swift-crypto's (BoringSSL on
/// Linux); this type keeps the project's hex helpers and the model-identity rule on top of it.
public struct SHA256 {
    private var hasher = Crypto.SHA256()

    public init() {}

    public mutating func update(_ data: Data) { hasher.update(data: data) }

    public mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }

    public mutating func update(_ buf: UnsafeRawBufferPointer) { hasher.update(bufferPointer: buf) }

    /// The 32-byte digest. Finalises a copy, so the hasher itself is left unchanged.
    public func finalize() -> [UInt8] { Array(hasher.finalize()) }

    public func hexDigest() -> String { finalize().map { String(format: "%02x", $0) }.joined() }

    public static func hex(_ data: Data) -> String { var s = SHA256(); s.update(data); return s.hexDigest() }
    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }

    /// Streams a file in 4 MiB reads.
    public static func hexOfFile(_ url: URL) throws -> String {
        var s = SHA256()
        try s.updateWithFile(url)
        return s.hexDigest()
    }

    mutating func updateWithFile(_ url: URL) throws {
        guard let h = FileHandle(forReadingAtPath: url.path) else {
            throw EvaluationError.io(path: url.path, reason: "cannot open for hashing")
        }
        defer { try? h.close() }
        while true {
            let chunk: Data?
            do { chunk = try h.read(upToCount: 4 << 20) } catch {
                throw EvaluationError.io(path: url.path, reason: "read failed while hashing (\(error.localizedDescription))")
            }
            guard let c = chunk, !c.isEmpty else { break }
            update(c)
        }
    }

    /// A model identity: the file's SHA-256, or for a folder the SHA-256 over its regular files in sorted
    /// relative-path order, each contributing "path\0" + its bytes' SHA-256 hex + "\n" (so renames change it).
    /// The training logs `align` leaves in its folder (metrics.jsonl, training_args.json: timings, the command
    /// line) are not the model: a bit-identical retrain keeps its identity and its finished evaluations.
    public static let trainingLogFiles: Set<String> = ["metrics.jsonl", "training_args.json"]

    public static func hexOfModel(path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EvaluationError.io(path: path, reason: "no such file or folder")
        }
        let url = URL(fileURLWithPath: path)
        if !isDir.boolValue { return try hexOfFile(url) }
        guard let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw EvaluationError.io(path: path, reason: "cannot list folder")
        }
        var rel: [String] = []
        let base = url.standardizedFileURL.path
        for case let f as URL in e {
            guard (try? f.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            var p = f.standardizedFileURL.path
            if p.hasPrefix(base + "/") { p.removeFirst(base.count + 1) }
            if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) || trainingLogFiles.contains(p) { continue }
            rel.append(p)
        }
        var s = SHA256()
        for p in rel.sorted() {
            s.update(Data((p + "\u{0}" + (try hexOfFile(url.appendingPathComponent(p))) + "\n").utf8))
        }
        return s.hexDigest()
    }
}
