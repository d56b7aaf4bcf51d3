import XCTest
import ModelFiles

final class DequantizeTests: XCTestCase {
    func testParityWithPythonGGUFForEveryType() throws {
        let types: [GGMLType] = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
        for t in types {
            let raw = try Fx.bytes("quants/\(t.name).bin")
            let want = try Fx.f32("quants/\(t.name).f32")
            XCTAssertEqual(raw.count / t.typeSize * t.blockSize, want.count, t.name)
            let got = try raw.withUnsafeBytes { try Dequantize.decode(type: t, bytes: $0, count: want.count) }
            assertBitsEqual(got, want, t.name)
        }
    }

    func testParallelSplitMatchesSerialOnLargeInput() throws {
        // Big enough to be split across workers; compare against block-by-block decoding.
        let raw = try Fx.bytes("quants/Q4_K.bin")
        var big = [UInt8]()
        for _ in 0 ..< 64 { big += raw }
        let n = big.count / GGMLType.q4_K.typeSize * 256
        let all = try big.withUnsafeBytes { try Dequantize.decode(type: .q4_K, bytes: $0, count: n) }
        let one = try Fx.f32("quants/Q4_K.f32")
        for k in 0 ..< 64 { assertBitsEqual(Array(all[k * one.count ..< (k + 1) * one.count]), one, "copy \(k)") }
    }

    func testHalfConversionCoversAllPatterns() {
        for h in 0 ... 0xFFFF {
            let want = Float(Float16(bitPattern: UInt16(h)))
            let got = Dequantize.halfToFloat(UInt16(h))
            if want.isNaN { XCTAssertTrue(got.isNaN) } else { XCTAssertEqual(got.bitPattern, want.bitPattern, "half 0x\(String(h, radix: 16))") }
        }
    }

    func testRejectsBadSizesAndUndecodableTypes() throws {
        var out = [Float](repeating: 0, count: 64)
        let raw = [UInt8](repeating: 0, count: 40)
        try raw.withUnsafeBytes { r in
            try out.withUnsafeMutableBufferPointer { o in
                XCTAssertThrowsError(try Dequantize.decode(type: .q4_0, bytes: r, count: 31, into: o))  // not whole blocks
                XCTAssertNoThrow(try Dequantize.decode(type: .q4_0, bytes: r, count: 64, into: o))      // 2 blocks = 36 bytes fit
                XCTAssertThrowsError(try Dequantize.decode(type: .q4_0, bytes: r, count: 96, into: o))  // bytes too short
                XCTAssertThrowsError(try Dequantize.decode(type: .q8_K, bytes: r, count: 0, into: o))   // no decoder
                XCTAssertThrowsError(try Dequantize.decode(type: .f32, bytes: r, count: 10, into: UnsafeMutableBufferPointer(rebasing: o[0 ..< 5])))
            }
        }
    }
}
