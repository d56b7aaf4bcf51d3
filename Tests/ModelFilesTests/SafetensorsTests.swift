import XCTest
import ModelFiles

final class SafetensorsTests: XCTestCase {
    func testReadSingleFile() throws {
        let f = try SafetensorsFile(path: Fx.path("single/model.safetensors"))
        XCTAssertEqual(Set(f.tensorNames), ["a.f32", "b.f16", "c.bf16", "d.scalar", "e.i32"])
        XCTAssertEqual(f.metadata, ["format": "pt"])
        XCTAssertEqual(f.info("a.f32")?.dtype, .F32)
        XCTAssertEqual(f.info("a.f32")?.shape, [4, 6])
        XCTAssertEqual(f.info("b.f16")?.dtype, .F16)
        XCTAssertEqual(f.info("c.bf16")?.shape, [2, 3, 4])
        XCTAssertEqual(f.info("d.scalar")?.shape, [])
        for n in ["a.f32", "b.f16", "c.bf16", "d.scalar"] {
            assertBitsEqual(try f.floats(n), try Fx.f32("single_\(n).f32"), n)
        }
        XCTAssertThrowsError(try f.floats("e.i32")) { e in
            XCTAssertEqual((e as? ModelFileError)?.kind, .unsupported)
            XCTAssertTrue("\(e)".contains("I32"), "\(e)")
        }
        XCTAssertThrowsError(try f.floats("zzz")) { XCTAssertEqual(($0 as? ModelFileError)?.kind, .notFound) }
    }

    func testShardedFolderResolvesAcrossShards() throws {
        let c = try SafetensorsCollection(folder: Fx.path("sharded"))
        XCTAssertEqual(c.tensorNames, ["lm_head.weight", "model.layers.0.w", "model.norm.weight"])
        XCTAssertTrue(c.file(for: "lm_head.weight")!.path.hasSuffix("model-00002-of-00002.safetensors"))
        XCTAssertEqual(c.info("lm_head.weight")?.dtype, .F16)
        for n in c.tensorNames { assertBitsEqual(try c.floats(n), try Fx.f32("sharded_\(n).f32"), n) }
        let single = try SafetensorsCollection(folder: Fx.path("single"))
        XCTAssertEqual(single.tensorNames.count, 5)
        XCTAssertThrowsError(try SafetensorsCollection(folder: Fx.path("quants")))
    }

    func testShardIndexCannotEscapeFolder() throws {
        let d = try Fx.tempDir()
        try #"{"weight_map": {"x": "../single/model.safetensors"}}"#.write(toFile: d + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SafetensorsCollection(folder: d)) { XCTAssertEqual(($0 as? ModelFileError)?.kind, .malformed) }
    }

    func testBF16RoundingMatchesTorch() throws {
        let raw = try Fx.bytes("bf16_cases.bin")
        var n = 0
        for i in stride(from: 0, to: raw.count, by: 8) {
            let x = UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24
            let y = UInt16(raw[i + 4]) | UInt16(raw[i + 5]) << 8
            XCTAssertEqual(SafetensorsWriter.bf16Bits(Float(bitPattern: x)), y, "0x\(String(x, radix: 16))")
            n += 1
        }
        XCTAssertGreaterThan(n, 2000)
    }

    func testWriterMatchesPythonWrittenFiles() throws {
        let x = try Fx.f32("writer_input.f32")
        let tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("w.b", [2, 3], Array(x[0 ..< 6])), ("w.a", [5], Array(x[6 ..< 11])), ("w.c", [4, 2], Array(x[11 ..< 19])),
        ]
        let d = try Fx.tempDir()
        for (dtype, py) in [(SafetensorsWriter.DType.f32, "writer_py_f32.safetensors"), (.bf16, "writer_py_bf16.safetensors")] {
            let path = d + "/\(py)"
            try SafetensorsWriter.write(path: path, tensors: tensors, dtype: dtype, metadata: ["format": "pt"])
            let ours = try SafetensorsFile(path: path), theirs = try SafetensorsFile(path: Fx.path(py))
            XCTAssertEqual(ours.tensorNames, theirs.tensorNames)
            XCTAssertEqual(ours.metadata, theirs.metadata)
            for n in theirs.tensorNames {
                XCTAssertEqual(ours.info(n)?.dtype, theirs.info(n)?.dtype)
                XCTAssertEqual(ours.info(n)?.shape, theirs.info(n)?.shape)
                let a = try ours.withRawBytes(n) { Array($0) }, b = try theirs.withRawBytes(n) { Array($0) }
                XCTAssertEqual(a, b, "\(py) \(n) raw bytes")
            }
            // Same layout conventions (sorted names, space padding to 8) give a byte-identical file.
            XCTAssertEqual(try Fx.bytes(py), [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), py)
        }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: d)), ["writer_py_f32.safetensors", "writer_py_bf16.safetensors"])
    }

    func testWriterRoundTripAndHeaderPadding() throws {
        let d = try Fx.tempDir()
        let path = d + "/m.safetensors"
        let v = (0 ..< 1000).map { Float($0) * 0.37 - 20 }
        try SafetensorsWriter.write(path: path, tensors: [("name \"quoted\"\n", [10, 100], v), ("e", [0], [])],
                                    metadata: ["k": "v", "z": "ü"])
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(try f.floats("name \"quoted\"\n"), v)
        XCTAssertEqual(f.info("e")?.shape, [0])
        XCTAssertEqual(f.metadata, ["k": "v", "z": "ü"])
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = raw.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(raw.count, 8 + Int(n) + 4000)
        // Overwrite keeps atomicity: result is the new file, no temp files left.
        try SafetensorsWriter.write(path: path, tensors: [("x", [2], [1, 2])], dtype: .bf16)
        XCTAssertEqual(try SafetensorsFile(path: path).floats("x"), [1, 2])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d), ["m.safetensors"])
        XCTAssertThrowsError(try SafetensorsWriter.write(path: path, tensors: [("x", [3], [1, 2])]))
        XCTAssertThrowsError(try SafetensorsWriter.write(path: path, tensors: [("x", [1], [1]), ("x", [1], [2])]))
        XCTAssertThrowsError(try SafetensorsWriter.write(path: path, tensors: [("x", [Int.max, 2], [1, 2])]))
        XCTAssertThrowsError(try SafetensorsWriter.write(path: path, tensors: [("x", [-1, -2], [1, 2])]))
        XCTAssertEqual(try SafetensorsFile(path: path).floats("x"), [1, 2], "failed writes leave the old file")
    }
}
