import Foundation
import Runtime
import Tensors

/// GSM8K from OLMES's request file (`gsm8k/gold_bpb_5shot`: the test split, 1,319 problems, each with its
/// 8-shot "Question: …\nAnswer: … So the answer is N." context, stop sequences and generation settings), scored
/// as exact match: greedy generation until a stop sequence, the number after "####" if there is one, else the last
/// number, compared with `short_answer` after OLMES's `regexes_to_ignore` (",", "$", everything up to "#### ", a
/// final ".").
public enum GSM8K {
    public struct Item: Sendable, Equatable {
        public var docID: Int
        public var nativeID: String?
        public var question: String
        /// The request's few-shot context, ending "Question: <question>\nAnswer:".
        public var context: String
        public var answer: String
        public var stopSequences: [String]
        public var maxNewTokens: Int

        /// The context for `shots` (0: the question alone, in the few-shot block's own format; 8: as given).
        public func context(shots: Int) -> String { shots == 0 ? "Question: \(question)\nAnswer:" : context }
    }

    public static let file = "gsm8k/test_8shot.jsonl"
    public static let name = "gsm8k"

    /// Every line checked; an error names the file, the line and the field.
    public static func load(path: String) throws -> [Item] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EvaluationError.io(path: path, reason: "cannot open (run scripts/setup.sh to fetch the benchmark files)")
        }
        let lines = try JSONLines.objects(in: data) { line, _, issue in
            switch issue {
            case .invalidJSON: return EvaluationError.malformed(path: path, line: line, reason: "not valid JSON")
            case .notAnObject: return EvaluationError.malformed(path: path, line: line, reason: "not a JSON object")
            }
        }
        var items: [Item] = [], seen = Set<Int>()
        for l in lines {
            do {
                let row = l.object
                guard let docID = try JSONRecordFields.optionalCount(row, "doc_id") else { throw JSONFieldError.missing("doc_id") }
                guard let doc = row["doc"] as? [String: Any] else { throw JSONFieldError(field: "doc", problem: "missing or not an object") }
                guard let request = row["request"] as? [String: Any] else { throw JSONFieldError(field: "request", problem: "missing or not an object") }
                let question = try JSONRecordFields.string(doc, "question")
                let answer = try JSONRecordFields.string(doc, "short_answer")
                let context = try JSONRecordFields.string(request, "context")
                var stops = ["Question:", "</s>", "<|im_end|>", "\n\n"]
                if let s = request["stop_sequences"] {
                    guard let list = s as? [String] else { throw JSONFieldError(field: "request.stop_sequences", problem: "not a list of strings") }
                    stops = list
                }
                var maxTokens = 512
                if let g = request["generation_kwargs"] as? [String: Any], let m = try JSONRecordFields.optionalCount(g, "max_gen_toks") {
                    maxTokens = m
                }
                if seen.insert(docID).inserted {
                    let native = (doc["id"] as? NSNumber)?.stringValue ?? doc["id"] as? String
                    items.append(Item(docID: docID, nativeID: native, question: question, context: context, answer: answer,
                                      stopSequences: stops, maxNewTokens: maxTokens))
                }
            } catch let e as JSONFieldError {
                throw EvaluationError.malformed(path: path, line: l.number, reason: e.description)
            }
        }
        guard !items.isEmpty else { throw EvaluationError.malformed(path: path, line: 1, reason: "no problems") }
        return items
    }

    /// A seeded subset in file order (the same rule as the multiple-choice benchmarks).
    public static func subset(_ items: [Item], count: Int?, seed: UInt64) -> [Item] {
        SeededSubset.pick(items, count: count, seed: seed)
    }

    /// The generation cut at its first stop sequence.
    public static func truncate(_ text: String, at stops: [String]) -> String {
        var end = text.endIndex
        for s in stops where !s.isEmpty { if let r = text.range(of: s), r.lowerBound < end { end = r.lowerBound } }
        return String(text[..<end])
    }

    /// OLMES's normalisation of both sides: the ignored patterns removed, then spaces trimmed.
    public static func normalize(_ s: String) -> String {
        var t = s
        if let r = t.range(of: "#### ", options: .backwards) { t = String(t[r.upperBound...]) }   // (?s).*####␠
        t = t.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "$", with: "")
        t = t.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasSuffix(".") { t.removeLast() }
        return t.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The number after "####" when the text has one, else the last number in it (nil: no number at all).
    public static func extract(_ text: String) -> String? {
        let pattern = "-?[$0-9.,]*[0-9]"
        guard let re = try? NSRegularExpression(pattern: pattern) else { return nil }
        let after = text.range(of: "####").map { String(text[$0.upperBound...]) }
        let source = after ?? text
        let ns = source as NSString
        let matches = re.matches(in: source, range: NSRange(location: 0, length: ns.length))
        guard let m = after != nil ? matches.first : matches.last else { return nil }
        return ns.substring(with: m.range)
    }

    public struct ScoredItem: Codable, Sendable {
        public var benchmark: String
        public var docID: Int
        public var nativeID: String?
        public var generation: String
        public var extracted: String?
        public var target: String
        public var exactMatch: Bool
        enum CodingKeys: String, CodingKey {
            case benchmark, generation, extracted, target
            case docID = "doc_id", nativeID = "native_id", exactMatch = "exact_match"
        }
        // Written by hand so an answer that could not be extracted is an explicit null, not a missing field.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(benchmark, forKey: .benchmark)
            try c.encode(docID, forKey: .docID)
            try c.encode(nativeID, forKey: .nativeID)
            try c.encode(generation, forKey: .generation)
            try c.encode(extracted, forKey: .extracted)
            try c.encode(target, forKey: .target)
            try c.encode(exactMatch, forKey: .exactMatch)
        }
    }

    public static func score(_ item: Item, generation raw: String) -> ScoredItem {
        let text = truncate(raw, at: item.stopSequences)
        let got = extract(text).map(normalize)
        return ScoredItem(benchmark: name, docID: item.docID, nativeID: item.nativeID, generation: text, extracted: got,
                          target: item.answer, exactMatch: got != nil && got == normalize(item.answer))
    }

    /// Generates for `items` (batched, stopping each at its stop sequences) and scores them.
    public static func evaluate(_ items: [Item], shots: Int, scorer: CapabilityScoring) throws -> [ScoredItem] {
        guard let first = items.first else { return [] }
        let texts = try scorer.complete(items.map { $0.context(shots: shots) }, maxNewTokens: first.maxNewTokens,
                                        stopSequences: first.stopSequences)
        return zip(items, texts).map { score($0, generation: $1) }
    }

    /// exact_match as a `Benchmarks.Result` (acc = acc_norm = exact match, with its standard error).
    public static func result(shots: Int, items: [ScoredItem]) -> Benchmarks.Result {
        let n = items.count, hits = items.filter(\.exactMatch).count
        let em = n == 0 ? .nan : Double(hits) / Double(n), se = Benchmarks.meanStderr(hits: hits, of: n)
        return Benchmarks.Result(benchmark: name, shots: shots, split: "test (exact match)", count: n,
                                 acc: em, accStderr: se, accNorm: em, accNormStderr: se)
    }
}
