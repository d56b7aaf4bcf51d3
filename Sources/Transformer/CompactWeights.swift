import Foundation
import Tensors

/// Which weights one-token decode steps multiply with.
public enum DecodeWeights: String, Sendable, CaseIterable {
    /// The f32 weights through sgemm: bit-for-bit the same logits as prefill.
    case f32
    /// int8 copies with a scale per 32 weights (`Int8Matrix`, like GGUF Q8_0) of every projection and the
    /// LM head, used for decode steps of at most `Int8Matrix.maxBatch` rows. About 4× less memory traffic
    /// per token; logits differ from f32 by the rounding of each weight to 1/254 of its block's range.
    case int8

    /// The default: int8, unless the environment says `SAFENEURON_DECODE_WEIGHTS=f32` (bit-exact to
    /// prefill; what parity tests against PyTorch use).
    public static var environmentDefault: DecodeWeights {
        if let v = getenvString("SAFENEURON_DECODE_WEIGHTS"), let d = DecodeWeights(rawValue: v.lowercased()) { return d }
        return .int8
    }
}

@inline(__always) func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

/// int8 copies of a model's matrices, tagged with a checksum of the f32 weights they were made from so
/// that in-place weight updates (training, pruning) are noticed and the copies rebuilt.
final class CompactWeights {
    /// q/k/v and gate/up are stacked: each multiplies the same input, so one parallel pass does all.
    struct Layer { let qkv, o, gateUp, down: Int8Matrix }
    let layers: [Layer]
    let lmHead: Int8Matrix
    let checksum: UInt64

    init(_ w: LlamaWeights, checksum: UInt64) {
        layers = w.layers.map {
            Layer(qkv: Int8Matrix(stacking: [$0.qProj, $0.kProj, $0.vProj]), o: Int8Matrix($0.oProj),
                  gateUp: Int8Matrix(stacking: [$0.gateProj, $0.upProj]), down: Int8Matrix($0.downProj))
        }
        lmHead = Int8Matrix(w.outputWeight)
        self.checksum = checksum
    }

    /// Order-sensitive checksum of the bit patterns of every matrix the copies are made from. One pass
    /// over the weights (a few tens of ms for 135M parameters): paid once per decode session, not per step.
    static func checksum(_ w: LlamaWeights) -> UInt64 {
        var tensors: [Tensor] = []
        for l in w.layers { tensors += [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj] }
        tensors.append(w.outputWeight)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in tensors {
            let n = t.count
            let parts = Parallel.workers
            var partial = [UInt64](repeating: 0, count: parts)
            partial.withUnsafeMutableBufferPointer { out in
                Parallel.forChunks(n, minChunk: 1 << 16) { chunk, range in
                    let raw = UnsafeRawPointer(t.pointer + range.lowerBound)
                    let m = range.count
                    var a = SIMD16<UInt32>(), b = SIMD16<UInt32>()
                    var i = 0
                    while i + 16 <= m {
                        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<UInt32>.self)
                        a &+= v
                        b &+= a   // position-sensitive (Fletcher-style)
                        i += 16
                    }
                    var s: UInt64 = 0
                    for k in 0..<16 { s = s &* 31 &+ UInt64(a[k]) &* 0x9E37_79B9 &+ UInt64(b[k]) }
                    while i < m { s = s &* 31 &+ UInt64(raw.load(fromByteOffset: i * 4, as: UInt32.self)); i += 1 }
                    out[chunk] = s &+ UInt64(range.lowerBound)
                }
            }
            for p in partial { h = (h ^ p) &* 0x100_0000_01b3 }
            h = (h ^ UInt64(n)) &* 0x100_0000_01b3
        }
        return h
    }
}
