import Foundation
import ModelFiles
import Transformer

/// The identified safety neurons of one model, as written to `neurons.json`:
///
///     {"format": "safeneuron.neurons/1", "model": "...", "pool": "mean", "tau_es": 2.0, "tau_sas": 2.0,
///      "layers": 30, "intermediate_size": 1536, "harmful": N, "harmless": M,
///      "sets": {"es": [[layer, neuron], ...], "sas": [...], "union": [...]},
///      "counts": {"es": .., "sas": .., "union": ..}}
///
/// plus optional "top_k" with a "topk" set/count, optional "rounds", and, when the top-k is ranked by gradient
/// attribution instead of Cohen's d, "score": "attribution" with "exclude_utility" (Q), "safety_pairs" and
/// "utility_pairs" (absent or "d" = ranked by d). Pairs are sorted by layer,
/// then neuron. Unknown extra keys are ignored on reading so later versions can annotate the file.
public struct NeuronsFile: Codable, Equatable, Sendable {
    public static let formatID = "safeneuron.neurons/1"
    /// Largest file `read` accepts; a full union over an 80-layer 28k-wide model is ~100 MB.
    public static let maxFileBytes = 1 << 30
    public static let setNames = ["es", "sas", "union", "topk"]
    public static let scoreNames = ["d", "attribution"]

    public struct Sets: Codable, Equatable, Sendable {
        public var es: [[Int]]
        public var sas: [[Int]]
        public var union: [[Int]]
        public var topk: [[Int]]?
    }

    public struct Counts: Codable, Equatable, Sendable {
        public var es: Int
        public var sas: Int
        public var union: Int
        public var topk: Int?
    }

    public var format: String
    public var model: String
    public var pool: String
    public var tauES: Double
    public var tauSAS: Double
    public var layers: Int
    public var intermediateSize: Int
    public var harmful: Int
    public var harmless: Int
    public var topK: Int?
    public var rounds: Int?
    /// What `topk` ranks by: nil or "d" (Cohen's d), or "attribution" (a · ∂margin/∂a on safety pairs).
    public var score: String?
    /// Attribution only: the utility neurons dropped before the top-k, and the pairs the scores came from.
    public var excludeUtility: Int?
    public var safetyPairs: Int?
    public var utilityPairs: Int?
    public var sets: Sets
    public var counts: Counts

    enum CodingKeys: String, CodingKey {
        case format, model, pool, layers, harmful, harmless, rounds, sets, counts, score
        case excludeUtility = "exclude_utility", safetyPairs = "safety_pairs", utilityPairs = "utility_pairs"
        case tauES = "tau_es", tauSAS = "tau_sas", intermediateSize = "intermediate_size", topK = "top_k"
    }

    public init(model: String, pool: ActivationPooling, tauES: Double, tauSAS: Double,
                scores: NeuronScores, selection: NeuronSelection, rounds: Int? = nil) {
        func pairs(_ s: NeuronSet) -> [[Int]] { s.pairs.map { [$0.layer, $0.neuron] } }
        format = Self.formatID
        self.model = model
        self.pool = pool.rawValue
        self.tauES = tauES
        self.tauSAS = tauSAS
        layers = scores.layers
        intermediateSize = scores.intermediateSize
        harmful = scores.harmfulCount
        harmless = scores.harmlessCount
        topK = selection.topK == nil ? nil : selection.k
        self.rounds = rounds
        sets = Sets(es: pairs(selection.es), sas: pairs(selection.sas), union: pairs(selection.union),
                    topk: selection.topK.map(pairs))
        counts = Counts(es: selection.es.count, sas: selection.sas.count, union: selection.union.count,
                        topk: selection.topK?.count)
    }

    public var pooling: ActivationPooling? { ActivationPooling(rawValue: pool) }

    /// The named set ("union", "es", "sas" or "topk") as a NeuronSet over this file's layers.
    public func set(named name: String) throws -> NeuronSet {
        let raw: [[Int]]?
        switch name {
        case "es": raw = sets.es
        case "sas": raw = sets.sas
        case "union": raw = sets.union
        case "topk": raw = sets.topk
        default:
            throw SafetyNeuronsError.invalidArgument("unknown neuron set '\(name)'; expected one of \(Self.setNames.joined(separator: ", "))")
        }
        guard let raw else {
            throw SafetyNeuronsError.invalidArgument("this neurons file has no 'topk' set (it was written without top_k)")
        }
        var pairs: [(layer: Int, neuron: Int)] = []
        pairs.reserveCapacity(raw.count)
        for p in raw {
            guard p.count == 2 else { throw SafetyNeuronsError.invalidArgument("set '\(name)' holds a non-pair \(p)") }
            pairs.append((p[0], p[1]))
        }
        return try NeuronSet(layerCount: layers, intermediateSize: intermediateSize, pairs: pairs)
    }

    // MARK: Validation

    /// Checks every invariant `set(named:)` and downstream code rely on; `source` names the file.
    public func validate(source: String) throws {
        func bad(_ why: String) -> SafetyNeuronsError { .invalidFile(path: source, reason: why) }
        guard format == Self.formatID else { throw bad("format is '\(format)', expected '\(Self.formatID)'") }
        guard pooling != nil else {
            throw bad("pool is '\(pool)', expected one of \(ActivationPooling.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", "))")
        }
        if let score, !Self.scoreNames.contains(score) {
            throw bad("score is '\(score)', expected one of \(Self.scoreNames.map { "'\($0)'" }.joined(separator: ", "))")
        }
        for (key, v) in [("exclude_utility", excludeUtility), ("safety_pairs", safetyPairs), ("utility_pairs", utilityPairs)] {
            if let v, v < 0 { throw bad("\(key) = \(v) is negative") }
        }
        guard tauES.isFinite, tauSAS.isFinite else { throw bad("tau_es/tau_sas must be finite") }
        guard layers > 0, layers <= 1 << 16 else { throw bad("layers = \(layers) is out of range") }
        guard intermediateSize > 0, intermediateSize <= 1 << 24 else {
            throw bad("intermediate_size = \(intermediateSize) is out of range")
        }
        guard harmful >= 0, harmless >= 0 else { throw bad("harmful/harmless prompt counts must not be negative") }
        if let r = rounds, r < 0 { throw bad("rounds = \(r) is negative") }

        func checkSet(_ name: String, _ s: [[Int]], count: Int?) throws {
            var prev: (Int, Int)? = nil
            for (i, p) in s.enumerated() {
                guard p.count == 2 else { throw bad("sets.\(name)[\(i)] has \(p.count) elements, expected [layer, neuron]") }
                let (l, j) = (p[0], p[1])
                guard l >= 0, l < layers, j >= 0, j < intermediateSize else {
                    throw bad("sets.\(name)[\(i)] = [\(l), \(j)] is outside \(layers) layers × \(intermediateSize) neurons")
                }
                if let (pl, pj) = prev, !(pl < l || (pl == l && pj < j)) {
                    throw bad("sets.\(name)[\(i)] = [\(l), \(j)] is not after [\(pl), \(pj)]; pairs must be sorted by layer, then neuron, without duplicates")
                }
                prev = (l, j)
            }
            guard let count else { throw bad("counts.\(name) is missing") }
            guard count == s.count else { throw bad("counts.\(name) = \(count) but sets.\(name) holds \(s.count) pairs") }
        }
        try checkSet("es", sets.es, count: counts.es)
        try checkSet("sas", sets.sas, count: counts.sas)
        try checkSet("union", sets.union, count: counts.union)

        // All three lists are sorted, so the union check is a linear merge.
        let key: ([Int]) -> Int = { $0[0] * self.intermediateSize + $0[1] }
        var expected: [Int] = []
        expected.reserveCapacity(sets.es.count + sets.sas.count)
        var a = 0, b = 0
        while a < sets.es.count || b < sets.sas.count {
            let ka = a < sets.es.count ? key(sets.es[a]) : Int.max
            let kb = b < sets.sas.count ? key(sets.sas[b]) : Int.max
            expected.append(min(ka, kb))
            if ka <= kb { a += 1 }
            if kb <= ka { b += 1 }
        }
        if expected != sets.union.map(key) { throw bad("sets.union is not the union of sets.es and sets.sas") }

        switch (topK, sets.topk) {
        case (nil, nil):
            if counts.topk != nil { throw bad("counts.topk is present but there is no topk set") }
        case (nil, _?): throw bad("sets.topk is present but top_k is missing")
        case (_?, nil): throw bad("top_k is present but sets.topk is missing")
        case let (k?, s?):
            guard k >= 0 else { throw bad("top_k = \(k) is negative") }
            try checkSet("topk", s, count: counts.topk)
            guard s.count <= k else { throw bad("sets.topk holds \(s.count) pairs, more than top_k = \(k)") }
        }
    }

    // MARK: Reading

    public static func decode(_ data: Data, source: String) throws -> NeuronsFile {
        let file: NeuronsFile
        do {
            file = try JSONDecoder().decode(NeuronsFile.self, from: data)
        } catch let e as DecodingError {
            // Foundation's decoder hides where the syntax broke; its serializer usually says.
            if case .dataCorrupted(let ctx) = e, ctx.codingPath.isEmpty {
                do { _ = try JSONSerialization.jsonObject(with: data) } catch {
                    throw SafetyNeuronsError.invalidFile(path: source, reason: "not valid JSON: \(((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? error.localizedDescription)")
                }
            }
            throw SafetyNeuronsError.invalidFile(path: source, reason: describe(e))
        } catch {
            throw SafetyNeuronsError.invalidFile(path: source, reason: "not valid JSON: \(error)")
        }
        try file.validate(source: source)
        return file
    }

    public static func read(from url: URL) throws -> NeuronsFile {
        let path = url.path
        let size: Int
        do {
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            size = (attrs[.size] as? NSNumber)?.intValue ?? -1
        } catch {
            throw SafetyNeuronsError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        guard size >= 0, size <= maxFileBytes else {
            throw SafetyNeuronsError.invalidFile(path: path, reason: "file size \(size) bytes exceeds the \(maxFileBytes)-byte limit")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw SafetyNeuronsError.io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, source: path)
    }

    private static func describe(_ e: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            let s = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return s.isEmpty ? "at the top level" : "at \(s.hasPrefix(".") ? String(s.dropFirst()) : s)"
        }
        switch e {
        case let .keyNotFound(k, c): return "missing key '\(k.stringValue)' \(at(c.codingPath))"
        case let .typeMismatch(_, c): return "wrong type \(at(c.codingPath)): \(c.debugDescription)"
        case let .valueNotFound(_, c): return "null value \(at(c.codingPath)): \(c.debugDescription)"
        case let .dataCorrupted(c):
            let under = c.underlyingError.map { " (\($0))" } ?? ""
            return "malformed JSON \(at(c.codingPath)): \(c.debugDescription)\(under)"
        @unknown default: return "\(e)"
        }
    }

    // MARK: Writing

    /// The file text: one key per line, pairs packed several to a line so large sets stay readable.
    public func jsonText() -> String {
        var o = "{\n"
        func line(_ k: String, _ v: String) { o += "  \"\(k)\": \(v),\n" }
        line("format", Self.quote(format))
        line("model", Self.quote(model))
        line("pool", Self.quote(pool))
        line("tau_es", Self.number(tauES))
        line("tau_sas", Self.number(tauSAS))
        line("layers", "\(layers)")
        line("intermediate_size", "\(intermediateSize)")
        line("harmful", "\(harmful)")
        line("harmless", "\(harmless)")
        if let topK { line("top_k", "\(topK)") }
        if let rounds { line("rounds", "\(rounds)") }
        if let score { line("score", Self.quote(score)) }
        if let excludeUtility { line("exclude_utility", "\(excludeUtility)") }
        if let safetyPairs { line("safety_pairs", "\(safetyPairs)") }
        if let utilityPairs { line("utility_pairs", "\(utilityPairs)") }
        var named: [(String, [[Int]])] = [("es", sets.es), ("sas", sets.sas), ("union", sets.union)]
        if let t = sets.topk { named.append(("topk", t)) }
        o += "  \"sets\": {\n"
        for (i, (name, pairs)) in named.enumerated() {
            o += "    \"\(name)\": " + Self.pairList(pairs) + (i + 1 < named.count ? ",\n" : "\n")
        }
        o += "  },\n"
        var cs = ["\"es\": \(counts.es)", "\"sas\": \(counts.sas)", "\"union\": \(counts.union)"]
        if let t = counts.topk { cs.append("\"topk\": \(t)") }
        o += "  \"counts\": {" + cs.joined(separator: ", ") + "}\n}\n"
        return o
    }

    /// Validates, then writes atomically: a temp file in the same folder renamed over the target,
    /// so readers never see a half-written file.
    public func write(to url: URL) throws {
        try validate(source: url.path)
        try writeAtomically(Data(jsonText().utf8), to: url)
    }

    static let pairsPerLine = 10

    static func pairList(_ pairs: [[Int]]) -> String {
        if pairs.isEmpty { return "[]" }
        var s = "["
        for (i, p) in pairs.enumerated() {
            if i % pairsPerLine == 0 { s += "\n      " } else { s += " " }
            s += "[\(p[0]), \(p[1])]"
            if i + 1 < pairs.count { s += "," }
        }
        return s + "\n    ]"
    }

    static func number(_ x: Double) -> String {
        // Swift prints integral doubles as "2.0" and others in shortest round-trip form; both are JSON.
        "\(x)"
    }

    static func quote(_ s: String) -> String { JSONText.quote(s) }
}

/// Writes through the project's one atomic writer (`AtomicWriter`: temp file, fsync, rename, folder fsync).
func writeAtomically(_ data: Data, to url: URL) throws {
    do { try AtomicWriter.write(data, to: url.path) } catch let e as ModelFileError {
        throw SafetyNeuronsError.io(path: url.path, reason: e.reason)
    }
}
