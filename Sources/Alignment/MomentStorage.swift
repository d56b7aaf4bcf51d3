import Foundation
import Tensors

/// How AdamW keeps its two moments.
///
/// `f32` is PyTorch's AdamW. `bf16` stores m and v as bfloat16 (the top 16 bits of the f32 pattern) and rounds
/// every new value *stochastically*: the f32 result r lies between two bf16 neighbours a ≤ r < b, and is stored
/// as b with probability (r − a)/(b − a), else a, so E[stored] = r exactly. Round-to-nearest would not do: with
/// β2 = 0.999 the per-step change of v is 0.1 % of v, under half a bf16 ulp (2⁻⁸ relative), so v would never
/// decay. The draws come from a counter-based hash of (seed, step, tensor, element), not from a stream, so the
/// result does not depend on how elements are split over threads and a resumed run repeats the same draws.
/// Each stored moment differs from the f32 one by less than one bf16 ulp of it (≤ 2⁻⁷ relative); the update uses
/// m/√v, so an element's step differs from f32 AdamW's by at most about 1.2 % of that step, with zero mean.
public enum MomentFormat: String, Codable, Sendable, CaseIterable {
    case f32, bf16

    /// Bytes of optimizer state per trainable element (both moments).
    public var bytesPerElement: Int { self == .f32 ? 8 : 4 }
}

/// One parameter's first or second moment, in `MomentFormat`. Zero-initialised; the memory is owned.
public final class MomentBuffer: @unchecked Sendable {
    public let format: MomentFormat
    public let shape: [Int]
    public let count: Int
    public let raw: UnsafeMutableRawPointer

    public init(shape: [Int], format: MomentFormat) {
        self.shape = shape; self.format = format
        count = shape.reduce(1, *)
        let bytes = max(1, count) * (format == .f32 ? 4 : 2)
        raw = .allocate(byteCount: bytes, alignment: 64)
        // Touch every page now (zeroing), so the plan's peak memory shows up at start-up, not mid-run.
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
    }

    deinit { raw.deallocate() }

    public var byteCount: Int { count * (format == .f32 ? 4 : 2) }
    public var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    public var halves: UnsafeMutablePointer<UInt16> { raw.assumingMemoryBound(to: UInt16.self) }

    /// Element i as f32 (exact for both formats).
    public subscript(i: Int) -> Float {
        format == .f32 ? floats[i] : BFloat16.float(halves[i])
    }
}

/// bfloat16 conversions: the value is the top half of an f32 bit pattern.
public enum BFloat16 {
    @inline(__always) public static func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Stochastic rounding of `x` given 16 uniformly random bits `r`: adding r to the 16 bits that are dropped
    /// carries into the kept half with probability (dropped bits)/2¹⁶, which is exactly (x − a)/(b − a) for the
    /// neighbours a, b of x's magnitude (IEEE is sign-magnitude, so this holds for both signs). NaN stays NaN;
    /// values that would carry past the largest finite bf16 are rounded towards zero instead.
    @inline(__always) public static func stochasticRound(_ x: Float, random r: UInt32) -> UInt16 {
        let bits = x.bitPattern
        if bits & 0x7F80_0000 == 0x7F80_0000 {          // Inf or NaN: keep the class (NaN stays quiet)
            return UInt16(bits >> 16) | (bits & 0x007F_FFFF != 0 ? 0x0040 : 0)
        }
        let sum = bits &+ (r & 0xFFFF)
        if sum & 0x7F80_0000 == 0x7F80_0000 { return UInt16(bits >> 16) }   // would overflow to Inf
        return UInt16(sum >> 16)
    }

    /// Round to nearest, ties to even (as torch's `.to(torch.bfloat16)`).
    @inline(__always) public static func roundNearestEven(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if bits & 0x7F80_0000 == 0x7F80_0000 { return UInt16(bits >> 16) | (bits & 0x007F_FFFF != 0 ? 0x0040 : 0) }
        let lsb = (bits >> 16) & 1
        return UInt16((bits &+ 0x7FFF &+ lsb) >> 16)
    }
}

/// The random bits behind stochastic rounding: a 32-bit integer hash (Wellons' "lowbias32" finaliser) of an
/// element index and a per-(seed, step, tensor, moment) key, so any element's draw can be recomputed alone.
public enum RoundingNoise {
    @inline(__always) public static func mix32(_ x0: UInt32) -> UInt32 {
        var x = x0
        x ^= x >> 16; x &*= 0x7FEB_352D
        x ^= x >> 15; x &*= 0x846C_A68B
        x ^= x >> 16
        return x
    }

    /// The key of one moment tensor at one optimizer step.
    public static func key(seed: UInt64, step: Int, tensor: Int, moment: Int) -> UInt32 {
        var g = SplitMix64(seed: seed, stream: UInt64(step) &* 0x1_0000 &+ UInt64(tensor) &* 2 &+ UInt64(moment))
        return UInt32(truncatingIfNeeded: g.next())
    }

    /// 16 random bits (in the low half) for element `index` under `key`.
    @inline(__always) public static func bits(index: Int, key: UInt32) -> UInt32 {
        mix32(mix32(UInt32(truncatingIfNeeded: index) ^ key) &+ UInt32(truncatingIfNeeded: index >> 32)) >> 16
    }
}
