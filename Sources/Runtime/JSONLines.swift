import Foundation

/// Reading and writing JSON Lines with errors that name the file and line: the project's one line reader
/// (`objects(in:)`, which every JSONL format's loader builds on) and one appender (`JSONLAppender`).
public enum JSONLines {
    /// One non-blank line: its 1-based number, its bytes (without the newline) and the object it holds.
    public struct Line {
        public let number: Int
        public let bytes: Data
        public let object: [String: Any]
    }

    /// Why a line is not a JSON object: not JSON at all (with the parser's message), or another JSON value.
    public enum Problem {
        case invalidJSON(Error)
        case notAnObject
    }

    /// Every non-blank line of `data` parsed as a JSON object, in order; "\r\n" endings are accepted. For a line
    /// that is not one, `problem` gives the error to throw, or nil to stop reading there (a torn last line, cut off
    /// by a kill, of an appended output: `isLast` says the line has no newline after it).
    public static func objects(in data: Data, problem: (_ line: Int, _ isLast: Bool, _ issue: Problem) -> Error?) throws -> [Line] {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var out: [Line] = []
        for (i, raw) in lines.enumerated() {
            if raw.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let isLast = i == lines.count - 1
            let bytes = Data(raw.last == 13 ? raw.dropLast() : raw)
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: bytes) } catch {
                if let e = problem(i + 1, isLast, .invalidJSON(error)) { throw e }
                break
            }
            guard let object = parsed as? [String: Any] else {
                if let e = problem(i + 1, isLast, .notAnObject) { throw e }
                break
            }
            out.append(Line(number: i + 1, bytes: bytes, object: object))
        }
        return out
    }

    /// Every non-empty line parsed as a JSON object. A torn last line (no trailing newline, invalid JSON)
    /// is an error unless `tolerateTornTail` (used when resuming our own appended outputs).
    public static func readObjects(_ path: String, tolerateTornTail: Bool = false) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { throw RuntimeError.missingFile(path: path) }
        return try objects(in: data) { line, isLast, issue in
            if tolerateTornTail && isLast { return nil }
            switch issue {
            case .invalidJSON: return RuntimeError.badFile(path: "\(path):\(line)", reason: "invalid JSON")
            case .notAnObject: return RuntimeError.badFile(path: "\(path):\(line)", reason: "line is not a JSON object")
            }
        }.map(\.object)
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

/// Appends JSON lines durably, one line per write call, so a killed run loses at most the line in flight: the
/// project's one appender (typed logs such as `GenerationAppender` encode their records and append through it).
public final class JSONLAppender {
    private var handle: FileHandle?
    public let path: String
    private let syncEachLine: Bool

    /// - Parameters:
    ///   - truncate: start an empty file.
    ///   - keepBytes: keep only this many leading bytes (the records a resuming reader accepted); by default a torn
    ///     last line left by a killed run is dropped, so the file stays valid JSON Lines.
    ///   - syncEachLine: fsync after each line (survives power loss, not just a kill).
    public init(path: String, truncate: Bool = false, keepBytes: Int? = nil, syncEachLine: Bool = true) throws {
        self.path = path
        self.syncEachLine = syncEachLine
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch { throw RuntimeError.io(path: path, reason: "cannot create folder (\(error.localizedDescription))") }
        if truncate || !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: nil) else { throw RuntimeError.io(path: path, reason: "cannot create file") }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw RuntimeError.io(path: path, reason: "cannot open for appending") }
        handle = h
        do {
            if let keepBytes {
                try h.truncate(atOffset: UInt64(keepBytes))
            } else if let data = fm.contents(atPath: path), let last = data.last, last != UInt8(ascii: "\n") {
                let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
                try h.truncate(atOffset: UInt64(keep))
            }
            try h.seekToEnd()
        } catch { throw RuntimeError.io(path: path, reason: "cannot open for appending (\(error.localizedDescription))") }
    }

    public func append(_ obj: Any) throws { try appendLine(JSONLines.encodeLine(obj)) }

    /// One already encoded line, newline included. FileHandle is unbuffered, so the line reaches the kernel here.
    public func appendLine(_ line: Data) throws {
        guard let h = handle else { throw RuntimeError.io(path: path, reason: "appender is closed") }
        do {
            try h.write(contentsOf: line)
            if syncEachLine { try h.synchronize() }
        } catch { throw RuntimeError.io(path: path, reason: "write failed (\(error.localizedDescription))") }
    }

    public func close() throws {
        guard let h = handle else { return }
        handle = nil
        do { try h.close() } catch { throw RuntimeError.io(path: path, reason: "close failed (\(error.localizedDescription))") }
    }

    deinit { try? handle?.close() }
}
