import Foundation
import XCTest
import ModelFiles

enum Fx {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: dir.appendingPathComponent(name))) }
    static func f32(_ name: String) throws -> [Float] {
        let b = try bytes(name)
        return (0 ..< b.count / 4).map { i in
            Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24)
        }
    }
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name))) as! [String: Any]
    }
    static func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("mf-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}

/// Deterministic PRNG for mutation tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Asserts bit-identical floats (NaNs compare by bit pattern too).
func assertBitsEqual(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): count", file: file, line: line)
    var bad = 0
    for i in 0 ..< min(a.count, b.count) where a[i].bitPattern != b[i].bitPattern {
        if bad < 5 { XCTFail("\(what)[\(i)]: \(a[i]) (0x\(String(a[i].bitPattern, radix: 16))) != \(b[i]) (0x\(String(b[i].bitPattern, radix: 16)))", file: file, line: line) }
        bad += 1
    }
    XCTAssertEqual(bad, 0, "\(what): \(bad) mismatches", file: file, line: line)
}

/// Little-endian byte builder for hand-crafted hostile files.
struct Bytes {
    var b: [UInt8] = []
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); b.append(contentsOf: Array(s.utf8)) }
    mutating func header(tensors: UInt64, kv: UInt64, version: UInt32 = 3) {
        b.append(contentsOf: Array("GGUF".utf8)); u32(version); u64(tensors); u64(kv)
    }
}
