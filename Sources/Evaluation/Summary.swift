import Foundation

/// A count out of a total, with the percentage precomputed for readers of the JSON.
public struct RateCount: Codable, Equatable, Sendable {
    public var count: Int
    public var total: Int
    public var percent: Double

    public init(count: Int, total: Int) {
        self.count = count
        self.total = total
        self.percent = total > 0 ? (Double(count) / Double(total) * 100 * 1e6).rounded() / 1e6 : 0
    }

    public var fraction: Double { total > 0 ? Double(count) / Double(total) : 0 }
}

/// Attack success rate: complied / total, overall and per prompt category.
public struct ASR: Codable, Equatable, Sendable {
    public var count: Int
    public var total: Int
    public var percent: Double
    public var byCategory: [String: RateCount]

    enum CodingKeys: String, CodingKey { case count, total, percent, byCategory = "by_category" }

    public var rate: RateCount { RateCount(count: count, total: total) }
}

/// A free-form setting value (JSON scalar).
public enum SettingValue: Codable, Equatable, Sendable, CustomStringConvertible {
    case string(String), int(Int), double(Double), bool(Bool)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .bool(let b): try c.encode(b)
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        }
    }
}

/// Which neurons were pruned for an attack run.
public struct PruneSetInfo: Codable, Equatable, Sendable {
    /// Attack condition name as it appears in the report columns, e.g. "ES(SN−)", "SAS(SN−)", "FULL(SN−)".
    public var name: String
    public var neuronCount: Int
    public var path: String?
    public var sha256: String?

    public init(name: String, neuronCount: Int, path: String? = nil, sha256: String? = nil) {
        self.name = name; self.neuronCount = neuronCount; self.path = path; self.sha256 = sha256
    }

    enum CodingKeys: String, CodingKey { case name, neuronCount = "neuron_count", path, sha256 }
}

/// Result of one safety evaluation run (one model/method × one prompt set × one attack condition).
public struct SafetySummary: Codable, Equatable, Sendable {
    public static let fileName = "summary.json"

    public var kind: String = "safety"
    /// Row label in reports (e.g. "Base", "DPO", "SafeNeuron").
    public var method: String
    /// "attack" (ASR on harmful prompts) or "over_refusal" (refusals on benign prompts).
    public var role: String
    public var dataset: String
    public var judge: String
    public var asr: ASR
    public var refused: Int
    public var degenerate: Int
    public var complied: Int
    public var settings: [String: SettingValue]
    public var modelSHA256: String?
    /// nil = no pruning (the unattacked model).
    public var pruneSet: PruneSetInfo?
    public var wallSeconds: Double
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case kind, method, role, dataset, judge, asr, refused, degenerate, complied, settings
        case modelSHA256 = "model_sha256", pruneSet = "prune_set", wallSeconds = "wall_seconds", createdAt = "created_at"
    }

    public static let roleAttack = "attack"
    public static let roleOverRefusal = "over_refusal"

    /// Builds from judged records. Records without a verdict are an error: judge first.
    public init(method: String, role: String = SafetySummary.roleAttack, dataset: String, judge: String,
                records: [GenerationRecord], settings: [String: SettingValue] = [:], modelSHA256: String? = nil,
                pruneSet: PruneSetInfo? = nil, wallSeconds: Double, createdAt: Date = Date()) throws {
        var refused = 0, degenerate = 0, complied = 0
        var perCat: [String: (Int, Int)] = [:]
        for (i, r) in records.enumerated() {
            guard let v = r.verdict else { throw EvaluationError.invalidArgument(reason: "record \(i) has no verdict") }
            let cat = r.category ?? "uncategorized"
            var pc = perCat[cat] ?? (0, 0)
            pc.1 += 1
            switch v {
            case .refused: refused += 1
            case .degenerate: degenerate += 1
            case .complied: complied += 1; pc.0 += 1
            }
            perCat[cat] = pc
        }
        let total = records.count
        let overall = RateCount(count: complied, total: total)
        self.method = method
        self.role = role
        self.dataset = dataset
        self.judge = judge
        self.asr = ASR(count: complied, total: total, percent: overall.percent,
                       byCategory: perCat.mapValues { RateCount(count: $0.0, total: $0.1) })
        self.refused = refused
        self.degenerate = degenerate
        self.complied = complied
        self.settings = settings
        self.modelSHA256 = modelSHA256
        self.pruneSet = pruneSet
        self.wallSeconds = wallSeconds
        let f = ISO8601DateFormatter()
        self.createdAt = f.string(from: createdAt)
    }

    /// Refused / total: the over-refusal rate when `role == over_refusal`.
    public var refusalRate: RateCount { RateCount(count: refused, total: asr.total) }

    /// Attack condition label for the report ("none" when nothing was pruned).
    public var condition: String { pruneSet?.name ?? "none" }

    public func write(to folder: URL) throws {
        try FileIO.writeAtomically(try encodeJSON(self, path: folder.path), to: folder.appendingPathComponent(SafetySummary.fileName))
    }

    public static func read(from folder: URL) throws -> SafetySummary {
        try decodeJSON(SafetySummary.self, from: folder.appendingPathComponent(fileName))
    }
}

/// Result of one capability evaluation (same method label as the safety runs it is reported with).
public struct CapabilitySummary: Codable, Equatable, Sendable {
    public var kind: String = "capability"
    public var method: String
    /// Metric name → value. Accuracies are fractions in [0, 1]; perplexity is a raw value.
    public var metrics: [String: Double]
    /// Which metric the report's "Capability" column shows.
    public var primaryMetric: String
    public var settings: [String: SettingValue]
    public var modelSHA256: String?
    public var pruneSet: PruneSetInfo?
    public var wallSeconds: Double
    /// The standard benchmarks of `eval --benchmarks`, one entry each (their acc/acc_norm also appear in
    /// `metrics` as `<benchmark>_acc` and `<benchmark>_acc_norm`).
    public var benchmarks: [Benchmarks.Result]?

    enum CodingKeys: String, CodingKey {
        case kind, method, metrics, settings, benchmarks
        case primaryMetric = "primary_metric", modelSHA256 = "model_sha256", pruneSet = "prune_set", wallSeconds = "wall_seconds"
    }

    public init(method: String, metrics: [String: Double], primaryMetric: String, settings: [String: SettingValue] = [:],
                modelSHA256: String? = nil, pruneSet: PruneSetInfo? = nil, wallSeconds: Double) {
        self.method = method; self.metrics = metrics; self.primaryMetric = primaryMetric; self.settings = settings
        self.modelSHA256 = modelSHA256; self.pruneSet = pruneSet; self.wallSeconds = wallSeconds
    }

    public func write(to folder: URL) throws {
        try FileIO.writeAtomically(try encodeJSON(self, path: folder.path), to: folder.appendingPathComponent(SafetySummary.fileName))
    }

    public static func read(from folder: URL) throws -> CapabilitySummary {
        try decodeJSON(CapabilitySummary.self, from: folder.appendingPathComponent(SafetySummary.fileName))
    }
}

/// Either kind of summary.json, told apart by its `kind` field.
public enum AnySummary: Sendable, Equatable {
    case safety(SafetySummary)
    case capability(CapabilitySummary)

    public var method: String {
        switch self { case .safety(let s): return s.method; case .capability(let c): return c.method }
    }

    public static func read(folder: URL) throws -> AnySummary {
        let url = folder.appendingPathComponent(SafetySummary.fileName)
        struct Kind: Decodable { var kind: String? }
        let k = try decodeJSON(Kind.self, from: url)
        switch k.kind ?? "safety" {
        case "safety": return .safety(try decodeJSON(SafetySummary.self, from: url))
        case "capability": return .capability(try decodeJSON(CapabilitySummary.self, from: url))
        case let other: throw EvaluationError.malformed(path: url.path, line: 1, reason: "unknown summary kind '\(other)'")
        }
    }
}

func encodeJSON<T: Encodable>(_ value: T, path: String) throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do {
        var d = try enc.encode(value)
        d.append(0x0A)
        return d
    } catch {
        throw EvaluationError.io(path: path, reason: "cannot encode JSON (\(error.localizedDescription))")
    }
}

func decodeJSON<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw EvaluationError.io(path: url.path, reason: "cannot read (\(error.localizedDescription))")
    }
    do { return try JSONDecoder().decode(T.self, from: data) } catch {
        throw EvaluationError.malformed(path: url.path, line: jsonErrorLine(error, data: data),
                                        reason: "invalid \(T.self) (\(describeDecodingError(error)))")
    }
}

private func jsonErrorLine(_ error: Error, data: Data) -> Int {
    // Foundation reports a character index for syntax errors; turn it into a line when we have one.
    let ns = error as NSError
    let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? NSError) ?? ns
    if let idx = underlying.userInfo["NSJSONSerializationErrorIndex"] as? Int, idx <= data.count {
        return 1 + data.prefix(idx).filter { $0 == 0x0A }.count
    }
    return 1
}

private func describeDecodingError(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let k, let ctx):
        return "missing key '\(k.stringValue)' at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
        return "\(ctx.debugDescription) at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.dataCorrupted(let ctx):
        return ctx.debugDescription
    default:
        return "\(error)"
    }
}
