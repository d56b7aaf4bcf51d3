import Foundation
import XCTest
import ModelFiles
@testable import Runtime
import Transformer

final class RefusalDirectionFileTests: XCTestCase {
    func tempPath(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("direction-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func testRoundTripAndFormat() throws {
        let (L, P, H) = (2, 3, 4)
        let diff = (0..<((L + 1) * P * H)).map { Float($0 % 7) - 2.5 }
        let f = try RefusalDirectionFile(meanDiff: diff, layers: L, positions: P, hidden: H, layer: 1, position: 2,
                                         metadata: ["model": "tiny", "harmful_count": "5"])
        let v = f.vector(layer: 1, position: 2)
        XCTAssertEqual(v, Array(diff[((1 * P + 2) * H)..<((1 * P + 3) * H)]))
        let norm = v.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        for (a, b) in zip(f.direction, v) { XCTAssertEqual(Double(a), Double(b) / norm, accuracy: 1e-6) }

        let path = try tempPath("d.safetensors")
        try f.write(to: path)
        let st = try SafetensorsFile(path: path)
        XCTAssertEqual(st.metadata["format"], "safeneuron.direction/1")
        XCTAssertEqual(st.metadata["position_offset"], "-1")
        XCTAssertEqual(st.info("mean_diff")?.shape, [L + 1, P, H])
        XCTAssertEqual(st.info("direction")?.shape, [H])
        let back = try RefusalDirectionFile.read(path: path)
        XCTAssertEqual(back, f)
        XCTAssertEqual(back.metadata["model"], "tiny")
    }

    func testRejectsForeignAndBrokenFiles() throws {
        let path = try tempPath("bad.safetensors")
        try SafetensorsWriter.write(path: path, tensors: [(name: "direction", shape: [2], values: [1, 0] as [Float])],
                                    metadata: ["format": "pt"])
        XCTAssertThrowsError(try RefusalDirectionFile.read(path: path))
        // Right format, but a direction that is not unit length.
        try SafetensorsWriter.write(path: path, tensors: [
            (name: "mean_diff", shape: [2, 1, 2], values: [1, 0, 0, 1] as [Float]),
            (name: "direction", shape: [2], values: [2, 0] as [Float]),
        ], metadata: ["format": RefusalDirectionFile.format, "layer": "1", "position": "0"])
        XCTAssertThrowsError(try RefusalDirectionFile.read(path: path))
        // Layer outside the rows.
        try SafetensorsWriter.write(path: path, tensors: [
            (name: "mean_diff", shape: [2, 1, 2], values: [1, 0, 0, 1] as [Float]),
            (name: "direction", shape: [2], values: [0, 1] as [Float]),
        ], metadata: ["format": RefusalDirectionFile.format, "layer": "2", "position": "0"])
        XCTAssertThrowsError(try RefusalDirectionFile.read(path: path))
        XCTAssertThrowsError(try RefusalDirectionFile(meanDiff: [0, 0, 0, 0], layers: 1, positions: 1, hidden: 2, layer: 0, position: 0),
                             "a zero mean difference has no direction")
    }

    func testGenerationPromptOfSmolLM2() throws {
        let gguf = SmolLM2IntegrationTests.ggufPath
        guard FileManager.default.fileExists(atPath: gguf) else { throw XCTSkip("default model not fetched; run scripts/setup.sh") }
        let m = try LanguageModel.load(gguf)
        let g = try RefusalDirection.generationPrompt(model: m, prompts: ["Hello there", "How do I bake bread?"])
        // "<|im_start|>assistant\n" after the user turn.
        XCTAssertEqual(g.count, 4)
        XCTAssertEqual(g.tokens, m.tokenizer.encode("<|im_start|>assistant\n", addSpecialTokens: false))
        XCTAssertEqual(g.tokens.first, m.tokenizer.id(of: "<|im_start|>"))
    }
}
