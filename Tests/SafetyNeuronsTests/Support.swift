import Foundation
import XCTest

/// The reference case written by scripts/reference/make_neuron_fixtures.py.
struct NeuronCase: Decodable {
    let layers: Int
    let intermediate_size: Int
    let harmful: Int
    let harmless: Int
    let tau_es: Double
    let tau_sas: Double
    let top_k: Int
    let mean_harmful: [Double]
    let mean_harmless: [Double]
    let var_harmful: [Double]
    let var_harmless: [Double]
    let d: [Double]
    let delta: [Double]
    let z: [Double]
    let es: [[Int]]
    let sas: [[Int]]
    let union: [[Int]]
    let topk: [[Int]]
    let pool_rows: [Int]
    let pool_mean: [[Double]]
    let pool_last: [[Double]]
}

enum Fixtures {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func loadCase() throws -> NeuronCase {
        let data = try Data(contentsOf: dir.appendingPathComponent("neurons_case.json"))
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try dec.decode(NeuronCase.self, from: data)
    }

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: dir.appendingPathComponent(name))
        precondition(data.count % 4 == 0)
        return data.withUnsafeBytes { raw in
            (0..<data.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// Pooled activations: [group][sample][layer][neuron] flattened, harmful first.
    static func activations(_ c: NeuronCase) throws -> (harmful: [Float], harmless: [Float]) {
        let all = try floats("activations.f32")
        let per = c.layers * c.intermediate_size
        XCTAssertEqual(all.count, (c.harmful + c.harmless) * per)
        let cut = c.harmful * per
        return (Array(all[0..<cut]), Array(all[cut..<all.count]))
    }
}

/// Deterministic generator so shuffled orders are reproducible.
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

/// Relative closeness with a tiny absolute floor; NaN matches NaN, infinities match exactly.
func assertClose(_ got: [Double], _ want: [Double], rel: Double = 1e-9, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(what): count", file: file, line: line)
    var failures = 0
    for i in 0..<min(got.count, want.count) {
        let a = got[i], b = want[i]
        let ok: Bool
        if b.isNaN { ok = a.isNaN } else if b.isInfinite { ok = a == b } else {
            ok = abs(a - b) <= rel * max(abs(b), 1e-6)
        }
        if !ok {
            failures += 1
            if failures <= 5 { XCTFail("\(what)[\(i)]: got \(a), want \(b)", file: file, line: line) }
        }
    }
    XCTAssertEqual(failures, 0, "\(what): \(failures) mismatches", file: file, line: line)
}
