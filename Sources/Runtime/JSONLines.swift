import Foundation

/// Reading and writing JSON Lines with errors that name the file and line.
public enum JSONLines {
    /// Every non-empty line parsed as a JSON object. A torn last line (no trailing newline, invalid JSON)
    /// is an error unless `tolerateTornTail` (used when resuming our own appended outputs).
    public static func readObjects(_ path: String, tolerateTornTail: Bool = false) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RuntimeError.missingFile(path: path) }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var out: [[String: Any]] = []
        for (i, line) in lines.enumerated() {
            let trimmed = line.drop(while: { $0 == 32 || $0 == 9 || $0 == 13 })
            if trimmed.isEmpty { continue }
            let isLast = i == lines.count - 1
            do {
                guard let obj = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw RuntimeError.badFile(path: "\(path):\(i + 1)", reason: "line is not a JSON object")
                }
                out.append(obj)
            } catch let e as RuntimeError {
                if tolerateTornTail && isLast { break }
                throw e
            } catch {
                if tolerateTornTail && isLast { break }
                throw RuntimeError.badFile(path: "\(path):\(i + 1)", reason: "invalid JSON")
            }
        }
        return out
    }

    /// A required string field of line `line` (1-based) of `path`.
    public static func string(_ obj: [String: Any], _ key: String, path: String, line: Int) throws -> String {
        guard let v = obj[key] as? String else {
            throw RuntimeError.badFile(path: "\(path):\(line)", reason: "missing string field '\(key)'")
        }
        return v
    }

    public static func encodeLine(_ obj: Any) throws -> Data {
        var d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
        d.append(UInt8(ascii: "\n"))
        return d
    }

    /// Writes all objects as one atomic file.
    public static func write(_ objects: [Any], to path: String) throws {
        var data = Data()
        for o in objects { data.append(try encodeLine(o)) }
        try AtomicFile.write(data, to: path)
    }
}

/// Appends JSON lines durably, one flushed line at a time, so a killed run loses at most the line in flight.
public final class JSONLAppender {
    private let handle: FileHandle
    public let path: String

    public init(path: String, truncate: Bool = false) throws {
        self.path = path
        let fm = FileManager.default
        try fm.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        if truncate || !fm.fileExists(atPath: path) { fm.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw RuntimeError.io(path: path, reason: "cannot open for appending") }
        handle = h
        // Drop a torn last line left by a killed run so the file stays valid JSON Lines.
        if let data = fm.contents(atPath: path), let last = data.last, last != UInt8(ascii: "\n") {
            let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            try h.truncate(atOffset: UInt64(keep))
        }
        try h.seekToEnd()
    }

    public func append(_ obj: Any) throws {
        try handle.write(contentsOf: JSONLines.encodeLine(obj))
        try handle.synchronize()
    }

    deinit { try? handle.close() }
}
