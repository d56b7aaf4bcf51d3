import Foundation
import TinyModelSupport
import XCTest
import ModelFiles
import Tokenization
import Runtime
import Transformer
import Evaluation
import SafetyNeurons

/// Seeded mutation runs over every reader of untrusted files. Each case must end in success or a typed,
/// one-line error naming the file, within `CaseRunner.perCaseLimit`; a hang aborts the run naming the case.
final class ReaderMutationTests: XCTestCase {
    /// Loads a model and exercises it the way the CLI does; any error must be typed too.
    static func exercise(_ path: String) throws {
        let m = try LanguageModel.load(path)
        let ids = try m.encodeChat(user: "the cat in a hat")
        _ = m.tokenizer.decode(ids)
        let out = try m.generate(prompts: [Array(ids.suffix(24))], maxNewTokens: 2)
        _ = m.decodeCompletion(out[0])
    }

    func testBaselineFixturesAreValid() throws {
        let dir = scratchFolder("baseline")
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = dir.appendingPathComponent("tiny.gguf")
        write(try TinyModel.gguf(), to: g)
        let m = try LanguageModel.load(g.path)
        XCTAssertEqual(m.config.numHiddenLayers, 2)
        XCTAssertNotNil(m.chatTemplate)
        let ids = try m.encodeChat(user: "the cat")
        XCTAssertTrue(m.tokenizer.decode(ids).contains("<|im_start|>assistant"))
        XCTAssertEqual(try m.generate(prompts: [ids], maxNewTokens: 3)[0].count, 3)
        let hf = dir.appendingPathComponent("hf")
        try m.exportHF(to: hf.path, dtype: .f32)
        let m2 = try LanguageModel.load(hf.path)
        XCTAssertEqual(try m2.encodeChat(user: "the cat"), ids)
        XCTAssertEqual(try NeuronsFile.decode(Data(TinyModel.neuronsJSON.utf8), source: "n.json").set(named: "union").count, 3)
        XCTAssertEqual(try PromptFile.parseJSONL(TinyModel.promptsJSONL, source: "p.jsonl").count, 3)
        XCTAssertEqual(try PromptFile.parseCSV(TinyModel.promptsCSV, source: "p.csv").count, 3)
        XCTAssertEqual(PromptFile.parseText(TinyModel.promptsTXT).count, 3)
    }

    // MARK: GGUF

    func testGGUFByteMutationsThroughFullLoad() throws {
        let dir = scratchFolder("gguf-bytes")
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try TinyModel.gguf()
        let header = try GGUFFile(bytes: base).dataOffset
        var rng = SeededRNG(seed: 0x6767_7566)
        var runner = CaseRunner("gguf-bytes")
        let n = 1500 * scale
        for i in 0..<n {
            var b = base
            for _ in 0..<rng.int(1..<4) {
                b = ByteMutator.mutate(b, rng: &rng, focus: rng.chance(0.85) ? 0..<header : nil)
            }
            let url = dir.appendingPathComponent("case\(i).gguf")
            write(b, to: url)
            runner.run("case \(i)", names: ["case\(i).gguf"]) { try Self.exercise(url.path) }
            try? FileManager.default.removeItem(at: url)
        }
        runner.report()
        XCTAssertGreaterThan(runner.failures, n / 2, "most random mutations must be rejected")
    }

    func testGGUFSemanticMutations() throws {
        let dir = scratchFolder("gguf-sem")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededRNG(seed: 0x5E4A_0001)
        var runner = CaseRunner("gguf-semantic")
        let keys = TinyModel.metadata().map(\.0) + ["llama.vocab_size", "llama.attention.key_length", "general.alignment",
                   "tokenizer.ggml.scores", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                   "llama.rope.scaling.type", "qwen2.block_count"]
        let long = String(repeating: "ab", count: 40_000)
        let values: [GGUFValue] = [
            .uint32(0), .uint32(1), .uint32(3), .uint32(7), .uint32(1 << 24), .uint32((1 << 24) + 1), .uint32(UInt32.max),
            .uint64(UInt64.max), .uint64(1 << 62), .int64(Int64.min), .int32(-1), .int64(-1),
            .float32(.nan), .float32(.infinity), .float32(-1), .float32(0), .float64(1e300), .bool(true), .bool(false),
            .string(""), .string("llama"), .string("gpt2"), .string("qwen2"), .string("t5"), .string("tekken"),
            .string(long), .string("{% for"), .string("{{ 'a' * 1000000000 }}"),
            .array(.string, []), .array(.string, [.string("a")]), .array(.int32, [.int32(-1)]),
            .array(.string, [.string("Ġ"), .string(long)]), .array(.string, [.string("a b c")]),
            .array(.float32, [.float32(.nan)]), .array(.array, [.array(.uint8, [.uint8(1)])]),
        ]
        let shapes = TinyModel.tensorShapes
        let n = 700 * scale
        for i in 0..<n {
            var extra: [(String, GGUFValue)] = []
            var drop = Set<String>(), skip = Set<String>()
            var over: [String: [Int]] = [:]
            for _ in 0..<rng.int(1..<3) {
                switch rng.int(0..<5) {
                case 0, 1: extra.append((rng.pick(keys), rng.pick(values)))
                case 2: drop.insert(rng.pick(keys))
                case 3: skip.insert(rng.pick(shapes).0)
                default:
                    let (name, s) = rng.pick(shapes)
                    var t = s
                    switch rng.int(0..<4) {
                    case 0: t = t.reversed()
                    case 1: t[0] += 32
                    case 2: t.append(1)
                    default: t = [t.reduce(1, *)]
                    }
                    over[name] = t
                }
            }
            // The llama (SentencePiece) tokenizer path: scores instead of merges.
            if rng.chance(0.15) {
                extra.append(("tokenizer.ggml.model", .string("llama")))
                drop.insert("tokenizer.ggml.merges")
                let toks = TinyModel.tokens
                extra.append(("tokenizer.ggml.scores", .array(.float32, toks.indices.map { .float32(Float(-$0)) })))
                if rng.chance(0.3) {
                    extra.append(("tokenizer.ggml.tokens", .array(.string, toks.dropLast().map { .string($0) } + [.string(long)])))
                }
            }
            let url = dir.appendingPathComponent("sem\(i).gguf")
            let label = "case \(i): " + extra.map { "\($0.0)=\(String(describing: $0.1).prefix(40))" }.joined(separator: ",")
                + " drop \(drop.sorted()) skip \(skip.sorted()) shapes \(over)"
            do { write(try TinyModel.gguf(metadata: extra, dropKeys: drop, skipTensors: skip, shapeOverride: over), to: url) }
            catch { continue } // the writer refused an inconsistent shape: nothing to test
            runner.run(label, names: ["sem\(i).gguf"]) { try Self.exercise(url.path) }
            try? FileManager.default.removeItem(at: url)
        }
        runner.report()
        XCTAssertGreaterThan(runner.failures, n / 4)
    }

    // MARK: Hugging Face folder

    static func splitSafetensors(_ b: [UInt8]) -> (header: Data, data: [UInt8])? {
        guard b.count >= 8 else { return nil }
        var n: UInt64 = 0
        for k in 0..<8 { n |= UInt64(b[k]) << (8 * UInt64(k)) }
        guard n <= UInt64(b.count - 8) else { return nil }
        return (Data(b[8..<(8 + Int(n))]), Array(b[(8 + Int(n))...]))
    }

    static func joinSafetensors(header: Data, data: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        let n = UInt64(header.count)
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        return out + [UInt8](header) + data
    }

    /// dtype lies, shape changes, overlapping / out-of-range / reversed data_offsets on one tensor entry.
    static func mutateSafetensorsHeader(_ header: Data, rng: inout SeededRNG) -> Data {
        guard var json = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else { return header }
        let names = json.keys.filter { $0 != "__metadata__" }.sorted()
        guard !names.isEmpty else { return header }
        let name = rng.pick(names)
        guard var e = json[name] as? [String: Any] else { return header }
        let offs = (e["data_offsets"] as? [Int]) ?? [0, 0]
        let shape = (e["shape"] as? [Int]) ?? []
        switch rng.int(0..<8) {
        case 0: e["dtype"] = rng.pick(["F16", "BF16", "I64", "F64", "U8", "BOOL", "F8_E4M3", "f32", "Q4_0", ""])
        case 1: e["shape"] = shape.reversed()
        case 2: e["shape"] = shape + [rng.pick([0, 2, 1 << 31])]
        case 3: e["shape"] = shape.map { $0 * rng.pick([0, 2, -1]) }
        case 4: // overlap another tensor's range
            if let other = json[rng.pick(names)] as? [String: Any], let o = other["data_offsets"] as? [Int] {
                e["data_offsets"] = [o[0] + rng.int(0..<4) * 4, o[0] + (offs[1] - offs[0])]
            }
        case 5: e["data_offsets"] = [offs[1], offs[0]]
        case 6: e["data_offsets"] = [offs[0], offs[1] &+ rng.pick([4, 1 << 20, Int(Int64.max - 8)])]
        default: json[rng.pick(["model.layers.9.mlp.up_proj.weight", names[0] + " "])] = e; json.removeValue(forKey: name); return
            (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? header
        }
        json[name] = e
        return (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? header
    }

    func testHFFolderMutations() throws {
        let root = scratchFolder("hf")
        defer { try? FileManager.default.removeItem(at: root) }
        let g = root.appendingPathComponent("tiny.gguf")
        write(try TinyModel.gguf(), to: g)
        let folder = root.appendingPathComponent("tinyhf")
        try LanguageModel.load(g.path).exportHF(to: folder.path, dtype: .f32)
        let fm = FileManager.default
        let files = try fm.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertTrue(files.contains("model.safetensors") && files.contains("tokenizer.json") && files.contains("config.json"))
        var originals: [String: [UInt8]] = [:]
        for f in files { originals[f] = [UInt8](try Data(contentsOf: folder.appendingPathComponent(f))) }
        let targets = ["config.json", "model.safetensors", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
            .filter { originals[$0] != nil }
        var rng = SeededRNG(seed: 0x4846_0002)
        var runner = CaseRunner("hf-folder")
        let n = 1500 * scale
        for i in 0..<n {
            let target = rng.pick(targets)
            let url = folder.appendingPathComponent(target)
            let orig = originals[target]!
            var mutated: [UInt8]? = orig
            var how = ""
            switch rng.int(0..<10) {
            case 0: mutated = nil; how = "deleted"
            case 1, 2, 3:
                if target == "model.safetensors", let (h, d) = Self.splitSafetensors(orig) {
                    mutated = Self.joinSafetensors(header: Self.mutateSafetensorsHeader(h, rng: &rng), data: d); how = "header structure"
                } else if target.hasSuffix(".json") {
                    mutated = [UInt8](JSONMutator.mutate(data: Data(orig), rng: &rng)); how = "json node"
                } else {
                    mutated = ByteMutator.mutate(orig, rng: &rng); how = "bytes"
                }
            case 4, 5:
                if target == "model.safetensors", let (h, d) = Self.splitSafetensors(orig) {
                    mutated = Self.joinSafetensors(header: JSONMutator.mutate(data: h, rng: &rng), data: d); how = "header json node"
                } else if target.hasSuffix(".json") {
                    var d = Data(orig)
                    for _ in 0..<rng.int(2..<5) { d = JSONMutator.mutate(data: d, rng: &rng) }
                    mutated = [UInt8](d); how = "json nodes"
                } else {
                    mutated = ByteMutator.mutate(orig, rng: &rng); how = "bytes"
                }
            default:
                var b = orig
                let focus: Range<Int>? = target == "model.safetensors" ? 0..<(Self.splitSafetensors(orig).map { $0.header.count + 8 } ?? 8) : nil
                for _ in 0..<rng.int(1..<4) { b = ByteMutator.mutate(b, rng: &rng, focus: focus) }
                mutated = b; how = "bytes"
            }
            if let mutated { write(mutated, to: url) } else { try? fm.removeItem(at: url) }
            runner.run("case \(i) \(target) \(how)", names: ["tinyhf"] + files) { try Self.exercise(folder.path) }
            write(orig, to: url)
        }
        runner.report()
        XCTAssertGreaterThan(runner.failures, n / 4)
    }

    // MARK: Prompt files and neurons.json

    func testPromptFileMutations() throws {
        let dir = scratchFolder("prompts")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededRNG(seed: 0x5052_0003)
        var runner = CaseRunner("prompt-files")
        let seeds: [(String, [UInt8])] = [("jsonl", Array(TinyModel.promptsJSONL.utf8)), ("csv", Array(TinyModel.promptsCSV.utf8)),
                                          ("txt", Array(TinyModel.promptsTXT.utf8))]
        var hostile: [(String, [UInt8])] = [
            ("csv", Array(("prompt\n\"" + String(repeating: "x", count: 2_000_000)).utf8)),
            ("csv", Array((Array(repeating: "c", count: 100_000).joined(separator: ",") + "\n1\n").utf8)),
            ("csv", Array(("prompt,category\r\"a\"\"\"b\",c\r\r" + String(repeating: "\"", count: 100_001)).utf8)),
            ("csv", [0x70, 0x72, 0x6F, 0x6D, 0x70, 0x74, 0x0A, 0xFF, 0xFE, 0x00, 0x0A]),
            ("csv", Array(String(repeating: "\n", count: 200_000).utf8)),
            ("csv", Array("\u{FEFF}prompt\n\"\"\n,\n".utf8)),
            ("jsonl", Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n").utf8)),
            ("jsonl", Array("{\"prompt\": 5}\n".utf8)), ("jsonl", Array("{\"prompt\": null, \"category\": []}\n".utf8)),
            ("jsonl", Array("{\"prompt\": \"a\", \"prompt\": \"b\"}\n{\"prompt\": 1e999999}\n".utf8)),
            ("jsonl", Array("{\"prompt\": \"\\ud800\"}\n".utf8)), ("jsonl", Array("\u{0}\u{0}\n\n".utf8)),
            ("jsonl", Array(String(repeating: "{\"prompt\":\"p\"}\n", count: 50_000).utf8)),
            ("txt", [0xC3, 0x28, 0x0A]), ("txt", []), ("jsonl", []), ("csv", []),
        ]
        let n = 1500 * scale
        for _ in 0..<n {
            let (ext, s) = rng.pick(seeds)
            var b = s
            for _ in 0..<rng.int(1..<5) { b = ByteMutator.mutate(b, rng: &rng) }
            hostile.append((ext, b))
        }
        for (i, (ext, b)) in hostile.enumerated() {
            let url = dir.appendingPathComponent("p\(i).\(ext)")
            write(b, to: url)
            runner.run("case \(i).\(ext)", names: ["p\(i).\(ext)"]) { _ = try PromptFile.load(path: url.path) }
            try? FileManager.default.removeItem(at: url)
        }
        runner.report()
        XCTAssertGreaterThan(runner.successes, 0)
        XCTAssertGreaterThan(runner.failures, 0)
    }

    func testNeuronsFileMutations() throws {
        let dir = scratchFolder("neurons")
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = SeededRNG(seed: 0x4E45_0004)
        var runner = CaseRunner("neurons.json")
        let seed = Array(TinyModel.neuronsJSON.utf8)
        let n = 1500 * scale
        for i in 0..<n {
            var b = seed
            if rng.chance(0.6) {
                var d = Data(b)
                for _ in 0..<rng.int(1..<4) { d = JSONMutator.mutate(data: d, rng: &rng) }
                b = [UInt8](d)
            } else {
                for _ in 0..<rng.int(1..<4) { b = ByteMutator.mutate(b, rng: &rng) }
            }
            let url = dir.appendingPathComponent("n\(i).json")
            write(b, to: url)
            runner.run("case \(i)", names: ["n\(i).json"]) {
                let f = try NeuronsFile.read(from: url)
                for name in ["union", "es", "sas", "topk"] { _ = try? f.set(named: name) }
                _ = try f.set(named: "union")
            }
            try? FileManager.default.removeItem(at: url)
        }
        runner.report()
        XCTAssertGreaterThan(runner.failures, n / 4)
    }
}
