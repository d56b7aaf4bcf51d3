import Foundation
import Runtime
import Transformer

/// An attack cell's perplexity: the same text and windows as the capability suite, under the cell's pruning.
/// `DIR/perplexity.json` = {"format": "safeneuron.perplexity/1", "perplexity": P, "tokens": N, "pruned_neurons": K}.
public enum CellPerplexity {
    public static let window = 512

    public static func measure(_ m: LanguageModel, ablation: NeuronSet?, into dir: URL) throws {
        let text = try FileIO.readText(DataPaths.projectData.appendingPathComponent("perplexity.txt"))
        let (sum, n) = try ModelCapabilityScorer(model: m, ablation: ablation, batchSize: 16).textNLL(text, window: window)
        let ppl = try Capability.perplexity(sumNLL: sum, tokenCount: n)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let obj: [String: Any] = ["format": "safeneuron.perplexity/1", "perplexity": ppl, "tokens": n,
                                  "pruned_neurons": ablation?.count ?? 0, "window": window]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]),
                             to: dir.appendingPathComponent("perplexity.json").path)
        Progress.note(String(format: "perplexity %.3f over %d tokens", ppl, n))
    }
}
