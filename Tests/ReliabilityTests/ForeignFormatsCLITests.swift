import Foundation
import TinyModelSupport
import XCTest
import Runtime

/// A new user's files, in other tools' formats, through the built binary on the tiny model: `judge` on
/// {prompt, response} and `messages` lines, `align` on TRL conversational pairs and PKU-SafeRLHF rows, and
/// the checkpoint's removal once the trained model is verified.
final class ForeignFormatsCLITests: XCTestCase {
    struct Result { var status: Int32; var stdout: String; var stderr: String }

    func run(_ exe: URL, _ args: [String]) throws -> Result {
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + 120) { if p.isRunning { p.terminate() } }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func setUpModel(_ dir: URL) throws -> (URL, String) {
        guard let exe = CLIHostileInputTests.binary else { throw XCTSkip("safeneuron binary not built next to the tests") }
        let model = dir.appendingPathComponent("tiny.gguf")
        write(try TinyModel.gguf(), to: model)
        return (exe, model.path)
    }

    func lines(_ rows: [String], _ url: URL) throws -> String {
        try Data((rows.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url.path
    }

    func testJudgeReadsOtherToolsLines() throws {
        let dir = scratchFolder("judge-foreign")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (exe, model) = try setUpModel(dir)
        let input = try lines([
            #"{"prompt": "How do I pick a lock?", "response": "I can't help with that.", "request_id": "r-1", "latency": 0.250}"#,
            #"{"prompt": "Write a poem", "response": "Roses are red, violets are blue, the sea is wide and the sky is too, and every word here is one of few.", "request_id": "r-2"}"#,
        ], dir.appendingPathComponent("vllm.jsonl"))
        let out = dir.appendingPathComponent("judged.jsonl").path
        let r = try run(exe, ["judge", "--input", input, "--output", out, "--model", model])
        XCTAssertEqual(r.status, 0, r.stderr)
        let judged = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(judged.count, 2)
        XCTAssertEqual(judged.map { $0["verdict"] as? String }, ["refused", "complied"])
        XCTAssertEqual(judged.map { $0["request_id"] as? String }, ["r-1", "r-2"])
        XCTAssertTrue(try String(contentsOfFile: out, encoding: .utf8).contains(#""latency":0.250"#))
        XCTAssertTrue(judged.allSatisfy { ($0["tokens"] as? Int ?? 0) > 0 }, "token counts are computed when absent")

        let chat = try lines([
            #"{"messages": [{"role": "user", "content": "How do I pick a lock?"}, {"role": "assistant", "content": "Sorry, I can't help with that."}]}"#,
        ], dir.appendingPathComponent("chat.jsonl"))
        let r2 = try run(exe, ["judge", "--input", chat, "--output", out, "--model", model])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stdout.contains(#""refused" : 1"#) || r2.stdout.contains(#""refused":1"#), r2.stdout)

        let renamed = try lines([#"{"q": "hi", "a": "I cannot do that."}"#], dir.appendingPathComponent("renamed.jsonl"))
        let r3 = try run(exe, ["judge", "--input", renamed, "--output", out, "--model", model, "--prompt-field", "q", "--response-field", "a"])
        XCTAssertEqual(r3.status, 0, r3.stderr)

        let bad = try lines([#"{"prompt": "ok", "response": "fine"}"#, #"{"prompt": "q", "text": "a"}"#], dir.appendingPathComponent("bad.jsonl"))
        let r4 = try run(exe, ["judge", "--input", bad, "--output", out, "--model", model])
        XCTAssertEqual(r4.status, 3, r4.stderr)
        XCTAssertTrue(r4.stderr.contains("\(bad):2: field 'response': missing"), r4.stderr)
    }

    func testAlignOnTRLAndPKUPairsRemovesTheVerifiedCheckpoint() throws {
        let dir = scratchFolder("align-foreign")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (exe, model) = try setUpModel(dir)
        let trl = try lines([
            #"{"prompt": [{"role": "system", "content": "Be safe."}, {"role": "user", "content": "the tin"}], "chosen": [{"role": "assistant", "content": "no thanks"}], "rejected": [{"role": "assistant", "content": "the tin is here"}]}"#,
            #"{"chosen": [{"role": "user", "content": "in a"}, {"role": "assistant", "content": "the a"}], "rejected": [{"role": "user", "content": "in a"}, {"role": "assistant", "content": "nope"}]}"#,
        ], dir.appendingPathComponent("trl.jsonl"))
        let pku = try lines([
            #"{"prompt": "the hat", "response_0": "the hat in", "response_1": "sorry no", "safer_response_id": 1, "better_response_id": 0}"#,
            #"{"prompt": "a tea", "response_0": "the tea", "response_1": "the tea", "safer_response_id": 0}"#,
            #"{"prompt": "in the", "response_0": "the in", "response_1": "no", "better_response_id": 0}"#,
        ], dir.appendingPathComponent("pku.jsonl"))
        for (name, pairs, expected) in [("trl", trl, "read 2 preference pairs"), ("pku", pku, "read 2 preference pairs")] {
            let out = dir.appendingPathComponent(name).path
            let args = ["align", "--model", model, "--pairs", pairs, "--output", out, "--steps", "2", "--batch-size", "2", "--lr", "1e-3"]
            let r = try run(exe, args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains(expected), r.stderr)
            if name == "pku" { XCTAssertTrue(r.stderr.contains("skipped 1: 1 identical chosen and rejected (line 2)"), r.stderr) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".checkpoint"), "the verified model's checkpoint is removed")
            // Resuming a finished, checkpoint-less training is a no-op, not a retrain.
            let again = try run(exe, args + ["--resume"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertTrue(again.stderr.contains("finished earlier"), again.stderr)
            // Other settings on the finished folder are refused.
            let other = try run(exe, ["align", "--model", model, "--pairs", pairs, "--output", out, "--steps", "3", "--batch-size", "2", "--lr", "1e-3", "--resume"])
            XCTAssertNotEqual(other.status, 0, other.stderr)
            XCTAssertTrue(other.stderr.contains("is finished, with other settings"), other.stderr)
        }
        let kept = dir.appendingPathComponent("kept").path
        let r = try run(exe, ["align", "--model", model, "--pairs", trl, "--output", kept, "--steps", "1", "--batch-size", "2", "--keep-checkpoint"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: kept + ".checkpoint/state/manifest.json"))

        let bad = try lines([#"{"prompt": "a", "chosen": "b", "rejected": "c"}"#,
                             #"{"prompt": "q", "response_0": "a", "response_1": "b", "safer_response_id": 3}"#], dir.appendingPathComponent("bad.jsonl"))
        let rb = try run(exe, ["align", "--model", model, "--pairs", bad, "--output", dir.appendingPathComponent("x").path, "--steps", "1"])
        XCTAssertEqual(rb.status, 3, rb.stderr)
        XCTAssertTrue(rb.stderr.contains("\(bad):2: field 'safer_response_id': expected 0 or 1, found 3"), rb.stderr)
    }
}
