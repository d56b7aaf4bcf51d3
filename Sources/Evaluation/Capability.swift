import Foundation

/// Model-independent capability metrics. The caller computes log-likelihoods / NLLs with the runtime.
public enum Capability {
    /// One multiple-choice question scored from per-choice continuation log-likelihoods.
    public struct MCScore: Sendable {
        /// Sum of token log-probabilities of each choice continuation given the context.
        public var logLikelihoods: [Double]
        /// The continuation text exactly as scored (lm-evaluation-harness scores " " + choice).
        public var choiceTexts: [String]
        public var answer: Int

        public init(logLikelihoods: [Double], choiceTexts: [String], answer: Int) {
            self.logLikelihoods = logLikelihoods; self.choiceTexts = choiceTexts; self.answer = answer
        }
    }

    public struct MCResult: Codable, Equatable, Sendable {
        public var acc: Double
        public var accNorm: Double
        public var count: Int
        enum CodingKeys: String, CodingKey { case acc, accNorm = "acc_norm", count }
    }

    /// Index of the maximum; the first one on ties (numpy.argmax semantics, as lm-evaluation-harness uses).
    public static func argmax(_ xs: [Double]) -> Int? {
        guard var best = xs.indices.first else { return nil }
        for i in xs.indices where xs[i] > xs[best] { best = i }
        return best
    }

    /// lm-evaluation-harness conventions: `acc` = argmax of log-likelihood is the answer;
    /// `acc_norm` = argmax of log-likelihood / UTF-8 byte length of the choice text.
    public static func multipleChoice(_ items: [MCScore]) throws -> MCResult {
        guard !items.isEmpty else { throw EvaluationError.invalidArgument(reason: "no multiple-choice items") }
        var hit = 0, hitNorm = 0
        for (i, it) in items.enumerated() {
            let n = it.logLikelihoods.count
            guard n > 0, it.choiceTexts.count == n, it.answer >= 0, it.answer < n else {
                throw EvaluationError.invalidArgument(reason:
                    "item \(i): \(n) log-likelihoods, \(it.choiceTexts.count) choices, answer \(it.answer)")
            }
            guard it.logLikelihoods.allSatisfy({ !$0.isNaN }) else {
                throw EvaluationError.invalidArgument(reason: "item \(i): NaN log-likelihood")
            }
            if argmax(it.logLikelihoods) == it.answer { hit += 1 }
            let norm = zip(it.logLikelihoods, it.choiceTexts).map { ll, t in ll / Double(max(1, t.utf8.count)) }
            if argmax(norm) == it.answer { hitNorm += 1 }
        }
        return MCResult(acc: Double(hit) / Double(items.count), accNorm: Double(hitNorm) / Double(items.count), count: items.count)
    }

    /// The final numeric answer: the first number after the last "####" if present, else the last number
    /// in the text. Commas and a leading "$" are dropped, trailing zero decimals ("42.0", "42.50" → "42.5")
    /// and leading zeros are normalised. Returns nil when no number is found.
    public static func extractFinalNumber(_ text: String) -> String? {
        if let r = text.range(of: "####", options: .backwards) {
            return numbers(in: text[r.upperBound...]).first
        }
        return numbers(in: Substring(text)).last
    }

    /// Exact match of the extracted final numbers of a response and a reference ("… #### 42").
    public static func gsmExactMatch(response: String, reference: String) -> Bool {
        guard let a = extractFinalNumber(response), let b = extractFinalNumber(reference) else { return false }
        return a == b
    }

    /// Normalised numbers in order of appearance. A number is an optional "-", digits with optional
    /// thousands commas, and an optional decimal part; "1,234.50" → "1234.5", "-0.0" → "0".
    static func numbers(in s: Substring) -> [String] {
        var out: [String] = []
        let chars = Array(s)
        var i = 0
        while i < chars.count {
            guard chars[i].isASCII, chars[i].isNumber else { i += 1; continue }
            let negative = i > 0 && chars[i - 1] == "-" && (i < 2 || !(chars[i - 2].isLetter || chars[i - 2].isNumber))
            var intPart = ""
            while i < chars.count {
                if chars[i].isASCII && chars[i].isNumber { intPart.append(chars[i]); i += 1 }
                else if chars[i] == ",", i + 1 < chars.count, chars[i + 1].isASCII, chars[i + 1].isNumber { i += 1 }
                else { break }
            }
            var frac = ""
            if i + 1 < chars.count, chars[i] == ".", chars[i + 1].isASCII, chars[i + 1].isNumber {
                i += 1
                while i < chars.count, chars[i].isASCII, chars[i].isNumber { frac.append(chars[i]); i += 1 }
            }
            while frac.hasSuffix("0") { frac.removeLast() }
            while intPart.count > 1 && intPart.hasPrefix("0") { intPart.removeFirst() }
            var num = intPart + (frac.isEmpty ? "" : "." + frac)
            if negative && num != "0" { num = "-" + num }
            out.append(num)
        }
        return out
    }

    /// Running (sum NLL, token count) aggregate for perplexity over many chunks.
    public struct NLLAccumulator: Codable, Equatable, Sendable {
        public var sumNLL: Double = 0
        public var tokenCount: Int = 0
        public init() {}
        public mutating func add(sumNLL: Double, tokenCount: Int) {
            self.sumNLL += sumNLL
            self.tokenCount += tokenCount
        }
        public var perplexity: Double? { try? Capability.perplexity(sumNLL: sumNLL, tokenCount: tokenCount) }
    }

    /// exp(sum NLL / tokens), NLL in nats.
    public static func perplexity(sumNLL: Double, tokenCount: Int) throws -> Double {
        guard tokenCount > 0 else { throw EvaluationError.invalidArgument(reason: "perplexity over 0 tokens") }
        guard sumNLL.isFinite, sumNLL >= 0 else { throw EvaluationError.invalidArgument(reason: "sum NLL \(sumNLL) is not a finite non-negative number") }
        return exp(sumNLL / Double(tokenCount))
    }

    /// Refused / total on the harmless set.
    public static func overRefusalRate(_ verdicts: [Verdict]) -> RateCount {
        RateCount(count: verdicts.filter { $0 == .refused }.count, total: verdicts.count)
    }
}

/// A 4-choice (or n-choice) question from data/mc_general.jsonl.
public struct MCQuestion: Codable, Equatable, Sendable {
    public var question: String
    public var choices: [String]
    public var answer: Int

    /// lm-evaluation-harness style prompt: the context ends with "Answer:" and each choice is scored as " " + choice.
    public var context: String { "Question: \(question)\nAnswer:" }
    public var continuations: [String] { choices.map { " " + $0 } }

    public static func load(url: URL) throws -> [MCQuestion] {
        try loadJSONL(url) { (q: MCQuestion, line: Int) in
            guard q.choices.count >= 2, q.answer >= 0, q.answer < q.choices.count else {
                throw EvaluationError.malformed(path: url.path, line: line,
                    reason: "answer \(q.answer) out of range for \(q.choices.count) choices")
            }
        }
    }
}

/// A grade-school word problem from data/gsm_mini.jsonl; `answer` ends in "#### <number>".
public struct GSMProblem: Codable, Equatable, Sendable {
    public var question: String
    public var answer: String

    public var finalAnswer: String? { Capability.extractFinalNumber(answer) }

    public static func load(url: URL) throws -> [GSMProblem] {
        try loadJSONL(url) { (p: GSMProblem, line: Int) in
            guard p.answer.contains("####"), p.finalAnswer != nil else {
                throw EvaluationError.malformed(path: url.path, line: line, reason: "answer lacks '#### <number>'")
            }
        }
    }
}

func loadJSONL<T: Decodable>(_ url: URL, validate: (T, Int) throws -> Void) throws -> [T] {
    let text = try FileIO.readText(url)
    var out: [T] = []
    let dec = JSONDecoder()
    var lineNo = 0
    for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
        lineNo += 1
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty { continue }
        let v: T
        do { v = try dec.decode(T.self, from: Data(line.utf8)) } catch {
            throw EvaluationError.malformed(path: url.path, line: lineNo, reason: "bad JSON record (\(PromptFile.briefJSONError(error)))")
        }
        try validate(v, lineNo)
        out.append(v)
    }
    return out
}
