import Foundation
import XCTest
@testable import ModelFiles

/// GGUFEncoding against the `gguf` Python package's own encodings (scripts/reference/make_gguf_encoding_fixture.py):
/// byte for byte, including round-half-away ties, a zero block, tiny and huge scales, f16 overflow and bf16 ties.
final class GGUFEncodingTests: XCTestCase {
    struct Fixture: Decodable { var bits: [UInt32]; var rows: Int; var columns: Int; var f16: String; var bf16: String; var q8_0: String }

    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    func testEncodingsMatchGGUFPy() throws {
        let data = try Data(contentsOf: Fx.dir.appendingPathComponent("gguf_encoding.json"))
        let f = try JSONDecoder().decode(Fixture.self, from: data)
        let values = f.bits.map { Float(bitPattern: $0) }
        try values.withUnsafeBufferPointer { v in
            XCTAssertEqual(hex(try GGUFEncoding.encode(v, as: .f16)), f.f16)
            XCTAssertEqual(hex(try GGUFEncoding.encode(v, as: .bf16)), f.bf16)
            XCTAssertEqual(hex(try GGUFEncoding.encode(v, as: .q8_0)), f.q8_0)
            XCTAssertEqual(try GGUFEncoding.encode(v, as: .f32), Array(UnsafeRawBufferPointer(v)))
            XCTAssertThrowsError(try GGUFEncoding.encode(UnsafeBufferPointer(rebasing: v[0..<31]), as: .q8_0))
            XCTAssertThrowsError(try GGUFEncoding.encode(v, as: .q4_K))
        }
    }

    /// A streamed file reads back through our GGUF reader with the planned tensors at aligned offsets.
    func testStreamWriterRoundTrip() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString.prefix(8)).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        let a: [Float] = (0..<96).map { Float($0) / 7 }, b: [Float] = [1, 2, 3]
        let plans = [GGUFStreamWriter.TensorPlan(name: "a", dims: [32, 3], type: .q8_0),
                     GGUFStreamWriter.TensorPlan(name: "b", dims: [3], type: .f32)]
        let w = GGUFStreamWriter(metadata: [("general.architecture", .string("llama"))], tensors: plans)
        let encoded = [try a.withUnsafeBufferPointer { try GGUFEncoding.encode($0, as: .q8_0) },
                       try b.withUnsafeBufferPointer { try GGUFEncoding.encode($0, as: .f32) }]
        try w.write(path: url.path) { encoded[$0] }
        let file = try GGUFFile(path: url.path)
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(file.tensorInfo("a")?.type, .q8_0)
        XCTAssertEqual(file.tensorInfo("b")?.shape, [3])
        // A producer that returns the wrong byte count is an error, and nothing is left at the path.
        let url2 = url.deletingLastPathComponent().appendingPathComponent("short-\(UUID().uuidString.prefix(8)).gguf")
        XCTAssertThrowsError(try w.write(path: url2.path) { _ in [0] })
        XCTAssertFalse(FileManager.default.fileExists(atPath: url2.path))
    }
}
