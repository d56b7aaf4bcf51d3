import Foundation
import TinyModelSupport
import XCTest
import ModelFiles
import Runtime

/// Writes valid seed files for scripts/fuzz.sh when RELIAB_FUZZ_SEEDS names a folder; otherwise checks the
/// seeds can be produced (they are the same bytes the mutation tests start from).
final class FuzzSeedTests: XCTestCase {
    func testWriteSeeds() throws {
        let env = ProcessInfo.processInfo.environment["RELIAB_FUZZ_SEEDS"]
        let dir = env.map { URL(fileURLWithPath: $0) } ?? scratchFolder("seeds")
        defer { if env == nil { try? FileManager.default.removeItem(at: dir) } }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let g = dir.appendingPathComponent("tiny.gguf")
        write(try TinyModel.gguf(), to: g)
        write(try TinyModel.gguf(template: nil, metadata: [("tokenizer.ggml.model", .string("llama"))],
                                 dropKeys: ["tokenizer.ggml.merges"]), to: dir.appendingPathComponent("tiny-spm.gguf"))
        let hf = dir.appendingPathComponent("hf")
        try LanguageModel.load(g.path).exportHF(to: hf.path, dtype: .bf16)
        let fm = FileManager.default
        for (src, dst) in [("model.safetensors", "tiny.safetensors"), ("tokenizer.json", "tokenizer.json"),
                           ("chat_template.jinja", "chatml.jinja")] {
            try? fm.removeItem(at: dir.appendingPathComponent(dst))
            try fm.copyItem(at: hf.appendingPathComponent(src), to: dir.appendingPathComponent(dst))
        }
        try fm.removeItem(at: hf)
        XCTAssertNoThrow(try SafetensorsFile(path: dir.appendingPathComponent("tiny.safetensors").path))
    }
}
