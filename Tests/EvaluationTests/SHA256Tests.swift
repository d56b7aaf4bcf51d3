import XCTest
@testable import Evaluation

final class SHA256Tests: XCTestCase {
    // FIPS 180-4 / NIST CAVP example vectors.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex("The quick brown fox jumps over the lazy dog"),
                       "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592")
    }

    func testMillionAsAndChunkingInvariance() {
        let data = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(SHA256.hex(data), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Block-boundary lengths (55, 56, 63, 64, 65) fed in uneven pieces give the one-shot digest.
        for n in [55, 56, 63, 64, 65, 129] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            var s = SHA256()
            var i = 0, step = 1
            while i < n { let j = min(n, i + step); s.update(Array(bytes[i..<j])); i = j; step += 3 }
            XCTAssertEqual(s.hexDigest(), SHA256.hex(Data(bytes)), "length \(n)")
        }
        XCTAssertEqual(SHA256.hex(Data((0..<56).map { _ in UInt8(ascii: "a") })),
                       "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
    }

    func testFileAndFolderHashes() throws {
        let dir = try TestPaths.tempDir()
        let f = try TestPaths.write("abc", "a.txt", in: dir)
        XCTAssertEqual(try SHA256.hexOfFile(f), SHA256.hex("abc"))
        XCTAssertEqual(try SHA256.hexOfModel(path: f.path), SHA256.hex("abc"))
        let sub = dir.appendingPathComponent("m")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        _ = try TestPaths.write("x", "config.json", in: sub)
        _ = try TestPaths.write("y", "model.safetensors", in: sub)
        let h1 = try SHA256.hexOfModel(path: sub.path)
        let expected = SHA256.hex("config.json\u{0}\(SHA256.hex("x"))\nmodel.safetensors\u{0}\(SHA256.hex("y"))\n")
        XCTAssertEqual(h1, expected)
        // Training logs (timings, the command line) are not part of the model's identity.
        _ = try TestPaths.write("{\"step\": 1, \"seconds\": 0.5}", "metrics.jsonl", in: sub)
        _ = try TestPaths.write("{\"command_line\": []}", "training_args.json", in: sub)
        XCTAssertEqual(try SHA256.hexOfModel(path: sub.path), h1)
        _ = try TestPaths.write("z", "model.safetensors", in: sub)
        XCTAssertNotEqual(try SHA256.hexOfModel(path: sub.path), h1)
        XCTAssertThrowsError(try SHA256.hexOfModel(path: dir.appendingPathComponent("missing").path))
    }
}
