import ArgumentParser
import Foundation
import Evaluation
import ModelFiles
import Alignment
import Runtime
import Tokenization
import SafetyNeurons
import Transformer

/// Options shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A .gguf file or a Hugging Face model folder (default: the set-up's SmolLM2-135M-Instruct).")
    var model: String?

    var path: String { model ?? DataPaths.defaultModel }

    func load() throws -> LanguageModel {
        let started = Date()
        let m = try LanguageModel.load(path)
        Progress.note("loaded \(m.displayName) (\(m.format), \(m.config.numHiddenLayers) layers) in \(String(format: "%.1f", Date().timeIntervalSince(started)))s")
        return m
    }
}

/// Options of commands that can run a model under the neuron-pruning attack.
struct PruneOptions: ParsableArguments {
    @Option(help: "A neurons.json from `identify`: zero those neurons' activations at inference.")
    var prune: String?

    @Option(help: "Which set of the neurons file to prune.")
    var pruneSet: NeuronSetChoice = .union

    func neuronSet(for model: LanguageModel) throws -> NeuronSet? {
        guard let prune else { return nil }
        return try loadNeuronSet(prune, set: pruneSet.rawValue, config: model.config)
    }
}

/// The sets a neurons.json holds: ES ∪ SAS, each alone, or the top-k by score.
enum NeuronSetChoice: String, ExpressibleByArgument, CaseIterable { case union, es, sas, topk }

/// Which model gives DPO's reference log-probs.
enum ReferenceChoice: String, ExpressibleByArgument, CaseIterable {
    /// The same ablation as the policy in each step.
    case ablated
    /// The unablated starting model.
    case intact
}

extension DPOLossType: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension LRScheduleKind: ExpressibleByArgument {}

/// The named set of a neurons.json, checked against the model it is applied to.
func loadNeuronSet(_ path: String, set name: String, config: ModelConfig) throws -> NeuronSet {
    let file = try NeuronsFile.read(from: URL(fileURLWithPath: path))
    guard file.layers == config.numHiddenLayers, file.intermediateSize == config.intermediateSize else {
        throw RuntimeError.badFile(path: path, reason: "neurons for \(file.layers) layers × \(file.intermediateSize) do not fit this model (\(config.numHiddenLayers) × \(config.intermediateSize))")
    }
    return try file.set(named: name)
}

/// Exit codes documented in the README.
enum ExitStatus: Int32 {
    case failure = 1, usage = 2, badInput = 3, io = 4, numerical = 5
}

/// Runs a command body, mapping our typed errors to one stderr line and a documented exit code.
func runReporting(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch let e as ValidationError { throw e } catch {
        let (code, text) = classify(error)
        FileHandle.standardError.write(Data("safeneuron: error: \(text)\n".utf8))
        throw ExitCode(code.rawValue)
    }
}

func classify(_ error: Error) -> (ExitStatus, String) {
    let text = String(describing: error)
    switch error {
    case let e as RuntimeError:
        switch e {
        case .io: return (.io, text)
        case .invalidArgument: return (.usage, text)
        default: return (.badInput, text)
        }
    case let e as ModelFileError:
        switch e.kind {
        case .io: return (.io, text)
        case .invalidArgument: return (.usage, text)
        default: return (.badInput, text)
        }
    case let e as EvaluationError:
        switch e {
        case .io: return (.io, text)
        case .invalidArgument, .unknownDataset: return (.usage, text)
        default: return (.badInput, text)
        }
    case let e as SafetyNeuronsError:
        switch e {
        case .io: return (.io, text)
        case .invalidArgument: return (.usage, text)
        case .invalidFile: return (.badInput, text)
        default: return (.failure, text)
        }
    case is NumericalError:
        return (.numerical, text)
    case is TokenizerError, is ChatTemplateError, is InferenceError, is TransformerError:
        return (.badInput, text)
    default:
        let typeName = String(describing: type(of: error))
        if typeName.contains("Numerical") || typeName.contains("NonFinite") { return (.numerical, text) }
        return (.failure, text)
    }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Harmful prompts for identification and pairs: a file or dataset name, or by default HarmBench's standard
/// behaviours plus Do-Not-Answer's malicious-use and toxicity files (`BuiltinDataset.defaultHarmful`).
/// StrongREJECT stays held out for evaluation.
func harmfulPrompts(_ nameOrPath: String?) throws -> [String] {
    let root = DataPaths.root
    if let nameOrPath { return try loadPrompts(nameOrPath, root: root).map(\.prompt) }
    return try BuiltinDataset.defaultHarmful(root: root).map(\.prompt)
}

/// Harmless prompts: a file or dataset name, or by default our data/harmless_identify.txt.
func harmlessPrompts(_ nameOrPath: String?) throws -> [String] {
    let path = nameOrPath ?? DataPaths.projectData.appendingPathComponent("harmless_identify.txt").path
    return try loadPrompts(path, root: DataPaths.root).map(\.prompt)
}
