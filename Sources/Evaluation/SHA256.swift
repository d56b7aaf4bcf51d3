import Foundation

/// FIPS 180-4 SHA-256, incremental. Foundation on Linux has no CryptoKit, and model files are hashed
/// by streaming them, so this keeps only one 64-byte block of state.
public struct SHA256 {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var block = [UInt8](repeating: 0, count: 64)
    private var blockFill = 0
    private var totalBytes: UInt64 = 0
    private var w = [UInt32](repeating: 0, count: 64)

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update(UnsafeRawBufferPointer($0)) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ buf: UnsafeRawBufferPointer) {
        totalBytes &+= UInt64(buf.count)
        var i = 0
        let n = buf.count
        while i < n {
            let take = min(64 - blockFill, n - i)
            for j in 0..<take { block[blockFill + j] = buf[i + j] }
            blockFill += take
            i += take
            if blockFill == 64 { compress(); blockFill = 0 }
        }
    }

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    private mutating func compress() {
        for t in 0..<16 {
            w[t] = UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16 | UInt32(block[4 * t + 2]) << 8 | UInt32(block[4 * t + 3])
        }
        for t in 16..<64 {
            let s0 = SHA256.rotr(w[t - 15], 7) ^ SHA256.rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
            let s1 = SHA256.rotr(w[t - 2], 17) ^ SHA256.rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for t in 0..<64 {
            let s1 = SHA256.rotr(e, 6) ^ SHA256.rotr(e, 11) ^ SHA256.rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ SHA256.k[t] &+ w[t]
            let s0 = SHA256.rotr(a, 2) ^ SHA256.rotr(a, 13) ^ SHA256.rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
        h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
    }

    /// The 32-byte digest. Pads a copy, so the hasher itself is left unchanged.
    public func finalize() -> [UInt8] {
        var c = self
        let bits = totalBytes &* 8
        c.block[c.blockFill] = 0x80
        c.blockFill += 1
        if c.blockFill > 56 {
            for j in c.blockFill..<64 { c.block[j] = 0 }
            c.compress(); c.blockFill = 0
        }
        for j in c.blockFill..<56 { c.block[j] = 0 }
        for j in 0..<8 { c.block[56 + j] = UInt8(truncatingIfNeeded: bits >> (56 - 8 * UInt64(j))) }
        c.compress()
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for v in c.h { out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        return out
    }

    public func hexDigest() -> String { finalize().map { String(format: "%02x", $0) }.joined() }

    public static func hex(_ data: Data) -> String { var s = SHA256(); s.update(data); return s.hexDigest() }
    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }

    /// Streams a file in 4 MiB reads.
    public static func hexOfFile(_ url: URL) throws -> String {
        var s = SHA256()
        try s.updateWithFile(url)
        return s.hexDigest()
    }

    mutating func updateWithFile(_ url: URL) throws {
        guard let h = FileHandle(forReadingAtPath: url.path) else {
            throw EvaluationError.io(path: url.path, reason: "cannot open for hashing")
        }
        defer { try? h.close() }
        while true {
            let chunk: Data?
            do { chunk = try h.read(upToCount: 4 << 20) } catch {
                throw EvaluationError.io(path: url.path, reason: "read failed while hashing (\(error.localizedDescription))")
            }
            guard let c = chunk, !c.isEmpty else { break }
            update(c)
        }
    }

    /// A model identity: the file's SHA-256, or for a folder the SHA-256 over its regular files in sorted
    /// relative-path order, each contributing "path\0" + its bytes' SHA-256 hex + "\n" (so renames change it).
    /// The training logs `align` leaves in its folder (metrics.jsonl, training_args.json: timings, the command
    /// line) are not the model: a bit-identical retrain keeps its identity and its finished evaluations.
    public static let trainingLogFiles: Set<String> = ["metrics.jsonl", "training_args.json"]

    public static func hexOfModel(path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EvaluationError.io(path: path, reason: "no such file or folder")
        }
        let url = URL(fileURLWithPath: path)
        if !isDir.boolValue { return try hexOfFile(url) }
        guard let e = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw EvaluationError.io(path: path, reason: "cannot list folder")
        }
        var rel: [String] = []
        let base = url.standardizedFileURL.path
        for case let f as URL in e {
            guard (try? f.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            var p = f.standardizedFileURL.path
            if p.hasPrefix(base + "/") { p.removeFirst(base.count + 1) }
            if p.split(separator: "/").contains(where: { $0.hasPrefix(".") }) || trainingLogFiles.contains(p) { continue }
            rel.append(p)
        }
        var s = SHA256()
        for p in rel.sorted() {
            s.update(Data((p + "\u{0}" + (try hexOfFile(url.appendingPathComponent(p))) + "\n").utf8))
        }
        return s.hexDigest()
    }
}
