import Foundation
import XCTest
import ModelFiles
import Runtime
import Transformer
import TinyModelSupport

/// Runs the built `safeneuron` binary on corrupted inputs: exit 3, one stderr line naming the file, no signal, < 10 s.
final class CLIHostileInputTests: XCTestCase {
    static var binary: URL? { SafeNeuronBinary.url }

    struct Outcome { var status: Int32; var signaled: Bool; var stderr: String; var seconds: Double }

    static func run(_ exe: URL, _ args: [String]) throws -> Outcome {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        let t0 = Date()
        try p.run()
        // Kill a hung child so the test fails instead of hanging.
        let deadline = DispatchTime.now() + 30
        DispatchQueue.global().asyncAfter(deadline: deadline) { if p.isRunning { p.terminate() } }
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                       stderr: String(decoding: data, as: UTF8.self), seconds: Date().timeIntervalSince(t0))
    }

    func testCorruptedFilesGiveExitCode3() throws {
        guard let exe = Self.binary else { throw XCTSkip("safeneuron binary not built next to the tests") }
        let dir = scratchFolder("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try TinyModel.gguf()
        let goodURL = dir.appendingPathComponent("good.gguf")
        write(good, to: goodURL)
        let truncated = dir.appendingPathComponent("truncated.gguf")
        write(Array(good.prefix(good.count / 2)), to: truncated)
        var flipped = good
        flipped[9] ^= 0x80  // high byte of the tensor count
        let flippedURL = dir.appendingPathComponent("bitflip.gguf")
        write(flipped, to: flippedURL)

        let hf = dir.appendingPathComponent("hf")
        try LanguageModel.load(goodURL.path).exportHF(to: hf.path, dtype: .f32)
        func variant(_ name: String, _ edit: (URL) throws -> Void) throws -> URL {
            let u = dir.appendingPathComponent(name)
            try FileManager.default.copyItem(at: hf, to: u)
            try edit(u)
            return u
        }
        let garbage = try variant("garbage_st") { u in
            var rng = SeededRNG(seed: 7)
            write((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, to: u.appendingPathComponent("model.safetensors"))
        }
        let badTok = try variant("bad_tokenizer") { u in
            let p = u.appendingPathComponent("tokenizer.json")
            let d = try Data(contentsOf: p)
            try d.prefix(d.count / 2).write(to: p)
        }
        let hostile = try variant("hostile_template") { u in
            try? FileManager.default.removeItem(at: u.appendingPathComponent("chat_template.jinja"))
            let json: [String: Any] = ["chat_template": "{% for i in range(1000000000) %}{{ i }}{% endfor %}",
                                       "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"]
            try JSONSerialization.data(withJSONObject: json).write(to: u.appendingPathComponent("tokenizer_config.json"))
        }
        let prompts = dir.appendingPathComponent("harmless.txt")
        try "a\nb\nc\n".write(to: prompts, atomically: true, encoding: .utf8)

        let cases: [(String, [String])] = [
            (truncated.lastPathComponent, ["inspect", "--model", truncated.path]),
            (flippedURL.lastPathComponent, ["inspect", "--model", flippedURL.path]),
            (truncated.lastPathComponent, ["tokenize", "--model", truncated.path, "--text", "hi"]),
            ("model.safetensors", ["inspect", "--model", garbage.path]),
            ("model.safetensors", ["generate", "--model", garbage.path, "--prompt", "hi", "--max-tokens", "2"]),
            ("bad_tokenizer", ["tokenize", "--model", badTok.path, "--text", "hi"]),
            ("hostile_template", ["generate", "--model", hostile.path, "--prompt", "hi", "--max-tokens", "2"]),
            ("hostile_template", ["identify", "--model", hostile.path, "--harmful", prompts.path, "--harmless", prompts.path,
                                  "--output", dir.appendingPathComponent("n.json").path]),
            (flippedURL.lastPathComponent, ["identify", "--model", flippedURL.path, "--harmful", prompts.path,
                                            "--harmless", prompts.path, "--output", dir.appendingPathComponent("n.json").path]),
        ]
        for (name, args) in cases {
            let o = try Self.run(exe, args)
            let lines = o.stderr.split(separator: "\n").filter { $0.hasPrefix("safeneuron: error:") }
            let label = args.prefix(3).joined(separator: " ")
            XCTAssertFalse(o.signaled, "\(label): killed by a signal")
            XCTAssertEqual(o.status, 3, "\(label): exit status; stderr: \(o.stderr)")
            XCTAssertEqual(lines.count, 1, "\(label): want one error line; stderr: \(o.stderr)")
            XCTAssertTrue(lines.first?.contains(name) ?? false, "\(label): error does not name \(name): \(o.stderr)")
            XCTAssertLessThan(o.seconds, 10, "\(label): took \(o.seconds) s")
        }
        // The sound model works through the same binary (so the failures above are about the files).
        let ok = try Self.run(exe, ["tokenize", "--model", goodURL.path, "--text", "the cat"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}

/// NaN/Inf weights are refused at export, naming the tensor, and a previous export stays intact.
final class NumericalFaultTests: XCTestCase {
    func testExportRefusesNonFiniteWeights() throws {
        let dir = scratchFolder("nan-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = dir.appendingPathComponent("tiny.gguf")
        write(try TinyModel.gguf(), to: g)
        let m = try LanguageModel.load(g.path)
        let out = dir.appendingPathComponent("export")
        try m.exportHF(to: out.path, dtype: .f32)
        let before = try Data(contentsOf: out.appendingPathComponent("model.safetensors"))

        for bad: Float in [.nan, .infinity, -.infinity] {
            let w = ModelWeights(config: m.config)
            for ((_, dst), (_, src)) in zip(w.namedParameters, m.weights.namedParameters) {
                dst.buffer.update(fromContentsOf: src.buffer)
            }
            w.layers[1].downProj.buffer[37] = bad
            XCTAssertThrowsError(try m.exportHF(to: out.path, dtype: .bf16, weights: w)) { e in
                let text = String(describing: e)
                XCTAssertTrue(text.contains("model.layers.1.mlp.down_proj.weight"), text)
                XCTAssertTrue(text.contains("37"), text)
                XCTAssertTrue(String(describing: type(of: e)).contains("Numerical"), "CLI maps *Numerical* types to exit 5")
            }
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("model.safetensors")), before)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
            XCTAssertEqual(leftovers, [], "no temp folders left behind")
        }
        // The reloaded previous export is still a working model.
        XCTAssertEqual(try LanguageModel.load(out.path).encodeChat(user: "x"), try m.encodeChat(user: "x"))
    }
}
