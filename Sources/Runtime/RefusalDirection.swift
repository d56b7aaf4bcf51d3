import Foundation
import ModelFiles
import Tensors
import Tokenization
import Transformer

/// `direction.safetensors`, written by `safeneuron direction` (format string `safeneuron.direction/1`).
///
/// Tensors (f32, little-endian, row-major):
/// - `mean_diff` [layers + 1, positions, hidden]: mean(harmful) − mean(harmless) of the residual stream. Row l < layers
///   is the input of decoder layer l (Hugging Face `hidden_states[l]`, row 0 the embeddings), row `layers` the
///   residual after the last layer, before the final norm. Position p is the p-th of the chat template's
///   generation-prompt tokens (the last `positions` prompt tokens; p = positions − 1 is the last prompt token).
/// - `direction` [hidden]: the chosen `mean_diff[layer, position]`, unit-normalised; what `--ablate-direction` and
///   `prune --direction` remove.
///
/// Metadata (`__metadata__`, strings): `format`, `model`, `layer`, `position` (index into positions),
/// `position_offset` (position − positions, e.g. −1 for the last token), `layers`, `positions`, `hidden_size`,
/// `harmful_count` and `harmless_count` (prompts averaged), `generation_prompt_tokens` (JSON array of ids),
/// `selection` (`auto` or `fixed`) and, for `auto`, `selection_report` (JSON: held-out prompts, baseline and
/// every candidate's compliance).
public struct RefusalDirectionFile: Equatable, Sendable {
    public static let format = "safeneuron.direction/1"

    public var meanDiff: [Float]
    public var direction: [Float]
    public var layers: Int
    public var positions: Int
    public var hidden: Int
    public var layer: Int
    public var position: Int
    public var metadata: [String: String]

    public init(meanDiff: [Float], layers: Int, positions: Int, hidden: Int, layer: Int, position: Int,
                metadata: [String: String] = [:]) throws {
        guard layers > 0, positions > 0, hidden > 0, meanDiff.count == (layers + 1) * positions * hidden else {
            throw RuntimeError.invalidArgument("mean differences hold \(meanDiff.count) values, expected (\(layers) + 1) × \(positions) × \(hidden)")
        }
        guard (0...layers).contains(layer), (0..<positions).contains(position) else {
            throw RuntimeError.invalidArgument("direction at layer \(layer), position \(position) is outside \(layers + 1) × \(positions)")
        }
        self.meanDiff = meanDiff; self.layers = layers; self.positions = positions; self.hidden = hidden
        self.layer = layer; self.position = position; self.metadata = metadata
        direction = try DirectionAblation.unit(Self.vector(meanDiff, layer: layer, position: position, positions: positions, hidden: hidden),
                                              hiddenSize: hidden, source: "mean difference at layer \(layer), position \(position)")
    }

    /// `meanDiff[layer, position, :]`.
    public static func vector(_ meanDiff: [Float], layer: Int, position: Int, positions: Int, hidden: Int) -> [Float] {
        let o = (layer * positions + position) * hidden
        return Array(meanDiff[o..<(o + hidden)])
    }

    public func vector(layer: Int, position: Int) -> [Float] {
        Self.vector(meanDiff, layer: layer, position: position, positions: positions, hidden: hidden)
    }

    public func write(to path: String) throws {
        var meta = metadata
        meta["format"] = Self.format
        meta["layer"] = String(layer); meta["position"] = String(position)
        meta["position_offset"] = String(position - positions)
        meta["layers"] = String(layers); meta["positions"] = String(positions); meta["hidden_size"] = String(hidden)
        try SafetensorsWriter.write(path: path, tensors: [
            (name: "mean_diff", shape: [layers + 1, positions, hidden], values: meanDiff),
            (name: "direction", shape: [hidden], values: direction),
        ], dtype: .f32, metadata: meta)
    }

    /// Reads and validates a direction file (format, shapes, finite values, a unit direction).
    public static func read(path: String) throws -> RefusalDirectionFile {
        let f = try SafetensorsFile(path: path)
        func bad(_ why: String) -> RuntimeError { .badFile(path: path, reason: why) }
        guard f.metadata["format"] == format else {
            throw bad("not a direction file (format '\(f.metadata["format"] ?? "none")', expected '\(format)')")
        }
        guard let md = f.info("mean_diff"), md.shape.count == 3, let dir = f.info("direction"), dir.shape.count == 1 else {
            throw bad("needs tensors mean_diff [layers + 1, positions, hidden] and direction [hidden]")
        }
        let (rows, positions, hidden) = (md.shape[0], md.shape[1], md.shape[2])
        guard rows >= 2, positions >= 1, hidden >= 1, dir.shape[0] == hidden else {
            throw bad("mean_diff \(md.shape) and direction \(dir.shape) do not fit together")
        }
        guard let layer = f.metadata["layer"].flatMap(Int.init), let position = f.metadata["position"].flatMap(Int.init),
              (0..<rows).contains(layer), (0..<positions).contains(position) else {
            throw bad("metadata layer/position missing or outside \(md.shape)")
        }
        let meanDiff = try f.floats("mean_diff"), direction = try f.floats("direction")
        guard meanDiff.allSatisfy(\.isFinite), direction.allSatisfy(\.isFinite) else { throw bad("holds non-finite values") }
        let norm = direction.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        guard abs(norm - 1) < 1e-3 else { throw bad("direction is not a unit vector (norm \(norm))") }
        var meta = f.metadata
        for k in ["format", "layer", "position", "position_offset", "layers", "positions", "hidden_size"] { meta[k] = nil }
        var file = try RefusalDirectionFile(meanDiff: meanDiff, layers: rows - 1, positions: positions, hidden: hidden,
                                            layer: layer, position: position, metadata: meta)
        file.direction = direction
        return file
    }
}

/// The difference-in-means refusal direction's measurements on a model.
public enum RefusalDirection {
    /// How many tokens the chat template's generation prompt adds after a user turn (SmolLM2:
    /// "<|im_start|>assistant\n", 3 tokens), and those tokens: the ids `add_generation_prompt=true` adds to
    /// `add_generation_prompt=false`. The smallest count over `prompts` (at least 1: the last prompt token).
    public static func generationPrompt(model: LanguageModel, prompts: [String]) throws -> (count: Int, tokens: [Int]) {
        var count = Int.max, tokens: [Int] = []
        for p in prompts {
            let msg = [ChatMessage(role: "user", content: p)]
            let with = try model.encodeChat(msg, addGenerationPrompt: true)
            let without = try model.encodeChat(msg, addGenerationPrompt: false)
            var common = 0
            while common < min(with.count, without.count) && with[common] == without[common] { common += 1 }
            let n = max(1, min(with.count - common, with.count))
            if n < count { count = n; tokens = Array(with.suffix(n)) }
        }
        return (count == .max ? 1 : count, tokens)
    }

    /// Runs every prompt through the model with the chat template (generation prompt included) and averages the
    /// residual stream at the last `positions` tokens, per group, at every layer input and the final residual.
    public static func collectMeans(model: LanguageModel, harmful: [String], harmless: [String], positions: Int,
                                    batchSize: Int = 16, progressLabel: String = "direction") throws -> ResidualMeans {
        let c = model.config
        let means = ResidualMeans(points: c.numHiddenLayers + 1, positions: positions, hidden: c.hiddenSize)
        let progress = Progress(progressLabel, total: harmful.count + harmless.count)
        for (group, prompts) in [(0, harmful), (1, harmless)] {
            let encoded = try prompts.map { try model.encodeChat(user: $0) }
            for (i, e) in encoded.enumerated() where e.count < positions {
                throw RuntimeError.invalidArgument("prompt \(i + 1) of the \(group == 0 ? "harmful" : "harmless") set has \(e.count) tokens, fewer than the \(positions) generation-prompt positions")
            }
            let order = encoded.indices.sorted { encoded[$0].count > encoded[$1].count }
            for start in stride(from: 0, to: order.count, by: max(1, batchSize)) {
                let batch = order[start..<min(order.count, start + max(1, batchSize))].map { encoded[$0] }
                _ = try model.engine.forward(sequences: batch, logitsFor: .positions(Array(repeating: [], count: batch.count)),
                                             residualTap: { point, _, residual, rows in
                                                 means.add(point: point, group: group, residual: residual, rows: rows)
                                             })
                progress.advance(by: batch.count, unit: "prompts")
            }
        }
        progress.finish()
        return means
    }
}

extension LanguageModel {
    /// Reads a direction file and ablates its direction in every later pass of this model's engine.
    @discardableResult
    public func ablateDirection(from path: String) throws -> RefusalDirectionFile {
        let file = try RefusalDirectionFile.read(path: path)
        guard file.hidden == config.hiddenSize else {
            throw RuntimeError.badFile(path: path, reason: "direction of size \(file.hidden) does not fit this model (hidden size \(config.hiddenSize))")
        }
        if file.layers != config.numHiddenLayers {
            Progress.note("note: \(path) was measured on a model with \(file.layers) layers, this one has \(config.numHiddenLayers)")
        }
        try engine.setAblatedDirection(file.direction)
        return file
    }
}
