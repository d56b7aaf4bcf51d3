import Foundation
import Runtime
import Tokenization

/// One preference pair as conversations, before tokenisation: whatever format it came in.
public struct PreferenceConversation: Sendable, Equatable {
    /// The turns before the answer; the last one is the user's.
    public var prompt: [ChatMessage]
    public var chosen: [ChatMessage]
    public var rejected: [ChatMessage]
    /// `safety` or `general` (as `safeneuron pairs` writes them); nil when the row does not say.
    public var kind: String?

    public init(prompt: [ChatMessage], chosen: [ChatMessage], rejected: [ChatMessage], kind: String? = nil) {
        self.prompt = prompt; self.chosen = chosen; self.rejected = rejected; self.kind = kind
    }
}

/// Reads preference data in the formats people train on, one JSON object per line; the format is recognised per row:
/// - `standard`: `{"prompt", "chosen", "rejected"}` strings (ours, and TRL's standard format with an explicit
///   prompt); an optional `system` string becomes a system turn;
/// - `conversational`: TRL's conversational format, `prompt`, `chosen` and `rejected` lists of `{role, content}`
///   messages (the prompt ends with the user's turn and may hold a system turn and earlier turns); without `prompt`
///   (TRL's implicit prompt), the common leading turns of `chosen` and `rejected` are the prompt;
/// - `pku-saferlhf`: PKU-SafeRLHF rows, `{"prompt", "response_0", "response_1", "safer_response_id"}`, with
///   `better_response_id` as the fallback when `safer_response_id` is absent; chosen = the safer response.
///
/// A row whose chosen and rejected answers are identical is skipped (DPO learns nothing from it) and counted.
/// Any other problem is an error naming the file, the line and the field.
public enum PreferenceFile {
    public enum Format: String, Sendable, CaseIterable { case standard, conversational, pkuSafeRLHF = "pku-saferlhf" }

    public struct Row: Sendable {
        public var line: Int
        public var format: Format
        public var pair: PreferenceConversation
    }

    public struct Loaded: Sendable {
        public var rows: [Row]
        /// Skipped rows: (line, why).
        public var skipped: [(line: Int, reason: String)]

        /// One line for stderr: what was read, in which formats, what was skipped and why.
        public func summary(path: String) -> String {
            let formats = Format.allCases.compactMap { f -> String? in
                let n = rows.filter { $0.format == f }.count
                return n > 0 ? "\(n) \(f.rawValue)" : nil
            }
            var s = "read \(rows.count) preference pairs from \(path) (\(formats.joined(separator: ", ")))"
            if !skipped.isEmpty {
                let reasons = Dictionary(grouping: skipped, by: \.reason).sorted { $0.key < $1.key }
                s += "; skipped \(skipped.count): " + reasons.map { reason, rows in
                    let lines = rows.prefix(5).map { String($0.line) }.joined(separator: ", ") + (rows.count > 5 ? ", …" : "")
                    return "\(rows.count) \(reason) (line\(rows.count == 1 ? "" : "s") \(lines))"
                }.joined(separator: "; ")
            }
            return s
        }
    }

    public static func load(_ path: String) throws -> Loaded {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileManager.default.fileExists(atPath: path) ? RuntimeError.io(path: path, reason: "cannot read") : RuntimeError.missingFile(path: path)
        }
        var rows: [Row] = []
        var skipped: [(line: Int, reason: String)] = []
        let lines = try JSONLines.objects(in: data) { line, _, issue in
            switch issue {
            case .invalidJSON: return RuntimeError.badFile(path: "\(path):\(line)", reason: "not valid JSON")
            case .notAnObject: return RuntimeError.badFile(path: "\(path):\(line)", reason: "not a JSON object")
            }
        }
        for l in lines {
            let i = l.number - 1, obj = l.object
            let at = "\(path):\(l.number)"
            do {
                let (format, pair) = try parse(obj)
                if pair.chosen == pair.rejected {
                    skipped.append((i + 1, "identical chosen and rejected"))
                    continue
                }
                rows.append(Row(line: i + 1, format: format, pair: pair))
            } catch let e as JSONFieldError {
                throw RuntimeError.badFile(path: at, reason: e.description)
            }
        }
        guard !rows.isEmpty else {
            throw RuntimeError.badFile(path: path, reason: skipped.isEmpty ? "no preference pairs" : "no usable preference pairs (\(skipped.count) skipped)")
        }
        return Loaded(rows: rows, skipped: skipped)
    }

    /// Recognises one row's format and reads it.
    public static func parse(_ obj: [String: Any]) throws -> (Format, PreferenceConversation) {
        let kind = try JSONRecordFields.optionalString(obj, "kind")
        if obj["response_0"] != nil || obj["response_1"] != nil {
            return (.pkuSafeRLHF, try parsePKU(obj, kind: kind))
        }
        if obj["chosen"] is [Any] || obj["rejected"] is [Any] || obj["prompt"] is [Any] {
            return (.conversational, try parseConversational(obj, kind: kind))
        }
        let prompt: String
        do { prompt = try JSONRecordFields.string(obj, "prompt") } catch var e as JSONFieldError where e.problem == "missing" {
            e.problem = "missing (string pairs need an explicit prompt; conversational pairs may leave it implicit)"
            throw e
        }
        var turns: [ChatMessage] = []
        if let system = try JSONRecordFields.optionalString(obj, "system") { turns.append(ChatMessage(role: "system", content: system)) }
        turns.append(ChatMessage(role: "user", content: prompt))
        let chosen = try JSONRecordFields.string(obj, "chosen"), rejected = try JSONRecordFields.string(obj, "rejected")
        return (.standard, PreferenceConversation(prompt: turns, chosen: [ChatMessage(role: "assistant", content: chosen)],
                                                  rejected: [ChatMessage(role: "assistant", content: rejected)], kind: kind))
    }

    static func parsePKU(_ obj: [String: Any], kind: String?) throws -> PreferenceConversation {
        let prompt = try JSONRecordFields.string(obj, "prompt")
        let responses = [try JSONRecordFields.string(obj, "response_0"), try JSONRecordFields.string(obj, "response_1")]
        func id(_ key: String) throws -> Int? {
            guard let v = obj[key], !(v is NSNull) else { return nil }
            guard let n = v as? NSNumber, !JSONRecordFields.isBoolean(n), n.doubleValue == 0 || n.doubleValue == 1 else {
                if let n = v as? NSNumber, !JSONRecordFields.isBoolean(n) {
                    throw JSONFieldError(field: key, problem: "expected 0 or 1, found \(n)")
                }
                throw JSONFieldError.mistyped(key, expected: "0 or 1", found: v)
            }
            return n.intValue
        }
        guard let chosen = try id("safer_response_id") ?? id("better_response_id") else {
            throw JSONFieldError(field: "safer_response_id", problem: "missing (and no 'better_response_id')")
        }
        return PreferenceConversation(prompt: [ChatMessage(role: "user", content: prompt)],
                                      chosen: [ChatMessage(role: "assistant", content: responses[chosen])],
                                      rejected: [ChatMessage(role: "assistant", content: responses[1 - chosen])], kind: kind)
    }

    static func parseConversational(_ obj: [String: Any], kind: String?) throws -> PreferenceConversation {
        func list(_ key: String) throws -> [ChatMessage] {
            guard let v = obj[key] else { throw JSONFieldError.missing(key) }
            return try JSONRecordFields.messages(v, field: key)
        }
        var chosen = try list("chosen"), rejected = try list("rejected")
        let prompt: [ChatMessage]
        if obj["prompt"] != nil {
            prompt = try list("prompt")
        } else {
            // TRL's implicit prompt: the turns both conversations share, up to the last user turn among them.
            var shared = 0
            while shared < min(chosen.count, rejected.count), chosen[shared] == rejected[shared] { shared += 1 }
            guard let lastUser = chosen[..<shared].lastIndex(where: { $0.role == "user" }) else {
                throw JSONFieldError(field: "chosen", problem: "no prompt field, and chosen and rejected share no leading user turn")
            }
            prompt = Array(chosen[...lastUser])
            chosen = Array(chosen[(lastUser + 1)...]); rejected = Array(rejected[(lastUser + 1)...])
        }
        guard let last = prompt.last else { throw JSONFieldError(field: "prompt", problem: "empty conversation") }
        guard last.role == "user" else {
            throw JSONFieldError(field: "prompt[\(prompt.count - 1)].role", problem: "the prompt's last turn is '\(last.role)', not the user's")
        }
        for (key, turns) in [("chosen", chosen), ("rejected", rejected)] {
            guard !turns.isEmpty else { throw JSONFieldError(field: key, problem: "no answer after the prompt") }
            if let i = turns.firstIndex(where: { $0.role != "assistant" }) {
                throw JSONFieldError(field: "\(key)[\(i)].role", problem: "'\(turns[i].role)' in an answer; every answer turn is the assistant's")
            }
        }
        return PreferenceConversation(prompt: prompt, chosen: chosen, rejected: rejected, kind: kind)
    }

    /// Reads and tokenises the pairs with the model's chat template (TRL's convention: the completion is the
    /// templated full conversation after the templated prompt with its generation prompt). Writes the summary to
    /// stderr. Errors name file:line.
    public static func readExamples(_ path: String, model m: LanguageModel, quiet: Bool = false) throws
        -> [(example: PreferenceExample, kind: String?)] {
        let loaded = try load(path)
        if !quiet { Progress.note(loaded.summary(path: path)) }
        return try loaded.rows.map { row in
            let at = "\(path):\(row.line)"
            do {
                let c = try m.encodeCompletion(prompt: row.pair.prompt, completion: row.pair.chosen)
                let r = try m.encodeCompletion(prompt: row.pair.prompt, completion: row.pair.rejected)
                let p = Array(c.ids.prefix(c.start))
                guard r.start == c.start, Array(r.ids.prefix(r.start)) == p else {
                    throw RuntimeError.badFile(path: at, reason: "chosen and rejected tokenise to different prompts")
                }
                return (PreferenceExample(promptIds: p, chosenIds: c.ids, rejectedIds: r.ids), row.pair.kind)
            } catch let e as RuntimeError {
                if case .badFile = e { throw e }
                throw RuntimeError.badFile(path: at, reason: e.description)
            } catch {
                throw RuntimeError.badFile(path: at, reason: "\(error)")
            }
        }
    }
}
