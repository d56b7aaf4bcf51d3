import Foundation
import Runtime
import Tokenization

/// Which fields of a JSON Lines record hold the prompt and the response (`judge --prompt-field/--response-field`).
public struct ResponseFields: Sendable, Equatable {
    public var prompt: String
    public var response: String
    /// A chat list whose last turn is the assistant's, used when the prompt/response fields are absent: the
    /// response is that last turn, the prompt the user turn before it.
    public var messages: String

    public init(prompt: String = "prompt", response: String = "response", messages: String = "messages") {
        self.prompt = prompt; self.response = response; self.messages = messages
    }
}

/// One response to judge, read from any tool's JSON Lines (vLLM, TRL, our own generations.jsonl).
public struct ResponseRecord: Sendable {
    public var prompt: String
    public var response: String
    public var category: String?
    /// The record's own token count, if it has one (`tokens`).
    public var tokens: Int?
    /// Every top-level member of the line with its exact source text, in the line's order: carried through.
    public var members: [(key: String, raw: String)]
}

/// Reads responses to judge. Each line is a JSON object holding a prompt and a response under the configured
/// field names, or a `messages` conversation ending with the assistant's turn. Errors name the file, the line
/// and the field. Like our own appended logs, an unterminated last line that does not parse (a write cut off by
/// a kill) is dropped and reported rather than failing the whole file.
public enum ResponseFile {
    public struct Loaded: Sendable {
        public var records: [ResponseRecord]
        public var droppedTornLine: Bool
    }

    public static func load(_ url: URL, fields: ResponseFields = ResponseFields()) throws -> Loaded {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw EvaluationError.io(path: url.path, reason: FileManager.default.fileExists(atPath: url.path) ? "cannot read" : "no such file")
        }
        var records: [ResponseRecord] = []
        var torn = false
        let lines = try JSONLines.objects(in: data) { line, isLast, issue in
            switch issue {
            case .invalidJSON(let error):
                if isLast { torn = true; return nil }
                return EvaluationError.malformed(path: url.path, line: line, reason: "not valid JSON (\(PromptFile.briefJSONError(error)))")
            case .notAnObject: return EvaluationError.malformed(path: url.path, line: line, reason: "not a JSON object")
            }
        }
        for l in lines {
            let lineNo = l.number, obj = l.object
            guard let members = JSONObjectMembers.split([UInt8](l.bytes)) else {
                throw EvaluationError.malformed(path: url.path, line: lineNo, reason: "not a JSON object")
            }
            do {
                records.append(try record(obj, members: members, fields: fields))
            } catch let e as JSONFieldError {
                throw EvaluationError.malformed(path: url.path, line: lineNo, reason: e.description)
            }
        }
        return Loaded(records: records, droppedTornLine: torn)
    }

    static func record(_ obj: [String: Any], members: [(key: String, raw: String)], fields: ResponseFields) throws -> ResponseRecord {
        let category = obj["category"] as? String
        let tokens = try JSONRecordFields.optionalCount(obj, "tokens")
        if obj[fields.response] == nil, let conversation = obj[fields.messages] {
            let turns = try JSONRecordFields.messages(conversation, field: fields.messages)
            guard let last = turns.last else { throw JSONFieldError(field: fields.messages, problem: "empty conversation") }
            guard last.role == "assistant" else {
                throw JSONFieldError(field: "\(fields.messages)[\(turns.count - 1)].role",
                                     problem: "the last turn is '\(last.role)'; the response must be the assistant's last turn")
            }
            let prompt: String
            if obj[fields.prompt] != nil {
                prompt = try JSONRecordFields.string(obj, fields.prompt)
            } else if let user = turns.dropLast().last(where: { $0.role == "user" }) {
                prompt = user.content
            } else {
                throw JSONFieldError(field: fields.messages, problem: "no user turn before the assistant's last turn")
            }
            return ResponseRecord(prompt: prompt, response: last.content, category: category, tokens: tokens, members: members)
        }
        do {
            let response = try JSONRecordFields.string(obj, fields.response)
            let prompt = try JSONRecordFields.string(obj, fields.prompt)
            return ResponseRecord(prompt: prompt, response: response, category: category, tokens: tokens, members: members)
        } catch var e as JSONFieldError where e.problem == "missing" {
            if e.field == fields.response { e.problem = "missing (and no '\(fields.messages)' conversation ending with the assistant's turn)" }
            throw e
        }
    }

    /// One judged line: the input's members unchanged, then `prompt`/`response` (when the input named them
    /// otherwise), `tokens` (when absent) and the judgement's fields, which replace any of the same name.
    public static func judgedLine(_ r: ResponseRecord, tokens: Int, judgement: Judgement, judge: String) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func raw<T: Encodable>(_ v: T) throws -> String { String(decoding: try enc.encode(v), as: UTF8.self) }
        var added: [(String, String)] = [
            ("verdict", try raw(judgement.verdict)), ("judge", try raw(judge)), ("reason", try raw(judgement.reason)),
            ("score", try raw(judgement.score)), ("mean_nll", try raw(judgement.meanNLL)), ("unparsed", try raw(judgement.unparsed)),
        ]
        let present = Set(r.members.map(\.key))
        if !present.contains("prompt") { added.append(("prompt", try raw(r.prompt))) }
        if !present.contains("response") { added.append(("response", try raw(r.response))) }
        if r.tokens == nil { added.append(("tokens", try raw(tokens))) }
        let replaced = Set(added.map(\.0))
        var parts: [String] = []
        for m in r.members where !replaced.contains(m.key) { parts.append(try raw(m.key) + ":" + m.raw) }
        for (k, v) in added.sorted(by: { $0.0 < $1.0 }) { parts.append(try raw(k) + ":" + v) }
        var line = Data(("{" + parts.joined(separator: ",") + "}").utf8)
        line.append(0x0A)
        return line
    }
}
