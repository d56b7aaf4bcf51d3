import Foundation
import Runtime

/// One generated response, as stored line by line in generations.jsonl.
public struct GenerationRecord: Codable, Equatable, Sendable {
    public var prompt: String
    public var response: String
    public var category: String?
    public var verdict: Verdict?
    /// Number of generated tokens.
    public var tokens: Int

    public init(prompt: String, response: String, category: String? = nil, verdict: Verdict? = nil, tokens: Int) {
        self.prompt = prompt
        self.response = response
        self.category = category
        self.verdict = verdict
        self.tokens = tokens
    }

    enum CodingKeys: String, CodingKey { case prompt, response, category, verdict, tokens }

    // Always emit every key (null when absent) so the file has a fixed shape for other tools.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(prompt, forKey: .prompt)
        try c.encode(response, forKey: .response)
        try c.encode(category, forKey: .category)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(tokens, forKey: .tokens)
    }
}

/// Reads generations.jsonl written by `GenerationAppender`.
public enum GenerationLog {
    public struct Loaded: Sendable {
        public var records: [GenerationRecord]
        /// True when an unterminated, unparseable last line (a write cut off by a kill) was dropped.
        public var droppedTornLine: Bool
        /// Bytes of the file that hold complete records; an appender truncates to this before writing.
        public var validByteCount: Int
        /// The last kept record was not followed by a newline.
        public var needsNewline: Bool
    }

    /// Loads all records. A missing file loads as empty. Only the final line may be damaged: if it does not
    /// end in a newline and does not decode it is dropped; damage anywhere else is an error naming the line.
    public static func load(_ url: URL) throws -> Loaded {
        guard FileManager.default.fileExists(atPath: url.path) else {
            return Loaded(records: [], droppedTornLine: false, validByteCount: 0, needsNewline: false)
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvaluationError.io(path: url.path, reason: "cannot read (\(error.localizedDescription))")
        }
        let bytes = [UInt8](data)
        let decoder = JSONDecoder()
        var records: [GenerationRecord] = []
        var start = 0
        var lineNo = 0
        var valid = 0
        var needsNewline = false
        while start < bytes.count {
            lineNo += 1
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            let terminated = end < bytes.count
            let slice = bytes[start..<end]
            let isBlank = slice.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if !isBlank {
                do {
                    records.append(try decoder.decode(GenerationRecord.self, from: Data(slice)))
                } catch {
                    if !terminated {
                        return Loaded(records: records, droppedTornLine: true, validByteCount: valid, needsNewline: false)
                    }
                    throw EvaluationError.malformed(path: url.path, line: lineNo,
                                                    reason: "bad generation record (\(PromptFile.briefJSONError(error)))")
                }
            }
            valid = terminated ? end + 1 : end
            needsNewline = !terminated && !isBlank
            start = end + 1
        }
        return Loaded(records: records, droppedTornLine: false, validByteCount: valid, needsNewline: needsNewline)
    }

    /// Writes all records at once (atomically), e.g. after re-judging.
    public static func write(_ records: [GenerationRecord], to url: URL) throws {
        var out = Data()
        for r in records {
            out.append(try GenerationAppender.encodeLine(r, path: url.path))
        }
        try FileIO.writeAtomically(out, to: url)
    }
}

/// Appends generation records one line per write so that a killed run loses at most the line in flight.
/// On open with `resume: true` it loads what is there, cuts a torn last line and continues after it.
public final class GenerationAppender {
    public let url: URL
    /// Records already present when the appender was opened (for skipping finished prompts).
    public let existing: [GenerationRecord]
    private let lines: JSONLAppender

    /// - Parameters:
    ///   - resume: keep existing complete records (default); false starts a fresh file.
    ///   - syncEachLine: also fsync after each line (survives power loss, not just a kill; slower).
    public init(url: URL, resume: Bool = true, syncEachLine: Bool = false) throws {
        self.url = url
        var loaded = GenerationLog.Loaded(records: [], droppedTornLine: false, validByteCount: 0, needsNewline: false)
        if resume && FileManager.default.fileExists(atPath: url.path) { loaded = try GenerationLog.load(url) }
        existing = loaded.records
        do {
            lines = try JSONLAppender(path: url.path, truncate: !resume, keepBytes: loaded.validByteCount, syncEachLine: syncEachLine)
            if loaded.needsNewline { try lines.appendLine(Data([0x0A])) }
        } catch let e as RuntimeError {
            throw EvaluationError.io(path: url.path, reason: e.reason)
        }
    }


    static func encodeLine(_ record: GenerationRecord, path: String) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var d: Data
        do { d = try enc.encode(record) } catch {
            throw EvaluationError.io(path: path, reason: "cannot encode record (\(error.localizedDescription))")
        }
        d.append(0x0A)
        return d
    }

    public func append(_ record: GenerationRecord) throws {
        let line = try GenerationAppender.encodeLine(record, path: url.path)
        do { try lines.appendLine(line) } catch let e as RuntimeError { throw EvaluationError.io(path: url.path, reason: e.reason) }
    }

    public func close() throws {
        do { try lines.close() } catch let e as RuntimeError { throw EvaluationError.io(path: url.path, reason: e.reason) }
    }
}
