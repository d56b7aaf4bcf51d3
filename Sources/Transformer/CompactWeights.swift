import Foundation
import Tensors

/// Which weights one-token decode steps multiply with.
public enum DecodeWeights: String, Sendable, CaseIterable {
    /// The f32 weights through sgemm: bit-for-bit the same logits as prefill.
    case f32
    /// Compact copies of every projection and the LM head, used for decode steps of at most
    /// `Int8Matrix.maxBatch` rows: lossless 4-bit (`Grid4Matrix`) where the weights lie on a Q4 grid (a
    /// Q4_0/Q4_1 GGUF as loaded), else int8 with a scale per 32 weights (`Int8Matrix`, like GGUF Q8_0),
    /// whose logits differ from f32 by the rounding of each weight to 1/254 of its block's range.
    /// 4–7× less memory traffic per token than f32.
    case int8

    /// Compact copies only when they hold exactly the f32 weights (every matrix lossless: a Q4/Q8 GGUF as
    /// loaded), otherwise the f32 weights. Decoding then never depends on how many rows a step has, so a
    /// prompt's greedy answer does not change with its place in a batch even for trained (f32) models.
    case auto

    /// The default: `auto`, unless the environment says `SAFENEURON_DECODE_WEIGHTS=f32` (bit-exact to
    /// prefill; what parity tests against PyTorch use) or `=int8` (compact copies always, lossy for f32
    /// checkpoints).
    public static var environmentDefault: DecodeWeights {
        if let v = getenvString("SAFENEURON_DECODE_WEIGHTS"), let d = DecodeWeights(rawValue: v.lowercased()) { return d }
        return .auto
    }
}

@inline(__always) func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

/// Compact copies of a model's matrices for small decode steps, tagged with a checksum of the f32 weights
/// they were made from so that in-place weight updates (training, pruning) are noticed and the copies
/// rebuilt. A matrix whose every block of 32 lies on a 16-level grid (a Q4_0/Q4_1 GGUF dequantised to
/// f32) is held losslessly in 4 bits (`Grid4Matrix`); any other in block-scaled int8 (`Int8Matrix`).
final class CompactWeights {
    /// q/k/v and gate/up are stacked: each multiplies the same input, so one parallel pass does all.
    struct Layer { let qkv, o, gateUp, down: any DecodeMatrix }
    let layers: [Layer]
    let lmHead: any DecodeMatrix
    let checksum: UInt64
    /// Matrices held losslessly in 4 bits, of all (7 per layer + LM head, stacked ones counted once).
    let lossless: Int, total: Int
    /// Every matrix holds exactly the f32 weights (a Q8_0 LM head re-quantises to its own codes and scales).
    var isExact: Bool { lossless == total }

    /// With `requireExact`, gives up (nil) at the first matrix the copies cannot hold exactly, instead of
    /// quantising a whole trained f32 model only to throw the copies away.
    init?(_ w: ModelWeights, checksum: UInt64, requireExact: Bool = false) {
        var lossless = 0, total = 0
        func compact(_ parts: [Tensor]) -> (any DecodeMatrix)? {
            total += 1
            if let g = Grid4Matrix.exact(stacking: parts) { lossless += 1; return g }
            let m = Int8Matrix(stacking: parts)
            if m.reproduces(parts) { lossless += 1 } else if requireExact { return nil }
            return m
        }
        var layers: [Layer] = []
        for l in w.layers {
            guard let qkv = compact([l.qProj, l.kProj, l.vProj]), let o = compact([l.oProj]),
                  let gateUp = compact([l.gateProj, l.upProj]), let down = compact([l.downProj]) else { return nil }
            layers.append(Layer(qkv: qkv, o: o, gateUp: gateUp, down: down))
        }
        guard let head = compact([w.outputWeight]) else { return nil }
        self.layers = layers
        lmHead = head
        self.checksum = checksum
        self.lossless = lossless; self.total = total
    }

    /// Order-sensitive checksum of the bit patterns of every matrix the copies are made from. One pass
    /// over the weights (a few tens of ms for 135M parameters): paid once per decode session, not per step.
    static func checksum(_ w: ModelWeights) -> UInt64 {
        var tensors: [Tensor] = []
        for l in w.layers { tensors += [l.qkv, l.oProj, l.gateUp, l.downProj] }
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
