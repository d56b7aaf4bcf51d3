import Foundation
import Runtime
import Transformer

/// An attack cell's perplexity: the same text and windows as the capability suite, under the cell's pruning.
/// `DIR/perplexity.json` = {"format": "safeneuron.perplexity/1", "perplexity": P, "tokens": N, "pruned_neurons": K,
/// "window": W}, the schema `Record` reads.
public enum CellPerplexity {
    public static let window = 512

    public struct Record: Codable, Equatable, Sendable {
        public var format: String
        public var perplexity: Double
        public var tokens: Int
        public var prunedNeurons: Int
        public var window: Int
        enum CodingKeys: String, CodingKey { case format, perplexity, tokens, prunedNeurons = "pruned_neurons", window }
    }

    /// The record in `dir`, nil when the cell's perplexity was not measured.
    public static func read(from dir: URL) throws -> Record? {
        let url = dir.appendingPathComponent("perplexity.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try decodeJSON(Record.self, from: url)
    }

    public static func measure(_ m: LanguageModel, ablation: NeuronSet?, into dir: URL) throws {
        let text = try FileIO.readText(DataPaths.projectData.appendingPathComponent("perplexity.txt"))
        let (sum, n) = try ModelCapabilityScorer(model: m, ablation: ablation, batchSize: 16).textNLL(text, window: window)
        let ppl = try Capability.perplexity(sumNLL: sum, tokenCount: n)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let record = Record(format: "safeneuron.perplexity/1", perplexity: ppl, tokens: n,
                            prunedNeurons: ablation?.count ?? 0, window: window)
        try AtomicFile.write(try encodeJSON(record, path: dir.path), to: dir.appendingPathComponent("perplexity.json").path)
        Progress.note(String(format: "perplexity %.3f over %d tokens", ppl, n))
    }
}
