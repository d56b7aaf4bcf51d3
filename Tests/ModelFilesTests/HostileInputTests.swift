import XCTest
import ModelFiles

/// Truncated, bit-flipped and hand-crafted hostile files must either parse or throw
/// ModelFileError — never crash, hang or allocate absurd amounts.
final class HostileInputTests: XCTestCase {
    /// Parses, and if that works decodes every tensor; returns true if it parsed.
    @discardableResult
    func tryGGUF(_ b: [UInt8]) -> Bool {
        do {
            let f = try GGUFFile(bytes: b)
            for t in f.tensorInfos where t.type.canDecode { _ = try f.floats(t.name) }
            return true
        } catch is ModelFileError {
            return false
        } catch {
            XCTFail("non-ModelFileError thrown: \(error)")
            return false
        }
    }

    @discardableResult
    func trySafetensors(_ b: [UInt8]) -> Bool {
        do {
            let f = try SafetensorsFile(bytes: b)
            for n in f.tensorNames where f.info(n)!.dtype.canDecode { _ = try f.floats(n) }
            return true
        } catch is ModelFileError {
            return false
        } catch {
            XCTFail("non-ModelFileError thrown: \(error)")
            return false
        }
    }

    func testTruncatedGGUFAtEveryOffset() throws {
        let b = try Fx.bytes("tiny.gguf")
        let full = try GGUFFile(bytes: b)
        let dataEnd = full.tensorInfos.map { $0.absoluteOffset + $0.byteCount }.max()!
        XCTAssertLessThan(b.count - dataEnd, 32, "only alignment padding follows the last tensor")
        for n in 0 ..< b.count {
            // Prefixes that keep all tensor data (dropping only trailing padding) stay valid.
            XCTAssertEqual(tryGGUF(Array(b[0 ..< n])), n >= dataEnd, "prefix \(n)")
        }
        XCTAssertTrue(tryGGUF(b))
    }

    func testBitFlippedGGUF() throws {
        let b = try Fx.bytes("tiny.gguf")
        var rng = SplitMix64(state: 42)
        var parsed = 0, rejected = 0
        for i in 0 ..< 2500 {
            var m = b
            let flips = 1 + i % 3
            for _ in 0 ..< flips {
                // Concentrate on the header/metadata/tensor table, where structure lives.
                let limit = i % 4 == 0 ? m.count : min(m.count, 1100)
                let pos = Int(rng.next() % UInt64(limit))
                if i % 5 == 0 { m[pos] = 0xFF } else { m[pos] ^= UInt8(1 << (rng.next() % 8)) }
            }
            if tryGGUF(m) { parsed += 1 } else { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 100)
        XCTAssertGreaterThan(parsed, 100)
    }

    func testTruncatedAndBitFlippedSafetensors() throws {
        let b = try Fx.bytes("single/model.safetensors")
        for n in 0 ..< b.count { XCTAssertFalse(trySafetensors(Array(b[0 ..< n])), "prefix \(n)") }
        XCTAssertTrue(trySafetensors(b))
        var rng = SplitMix64(state: 7)
        var rejected = 0
        for i in 0 ..< 1500 {
            var m = b
            let hlen = 8 + Int(b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            let pos = Int(rng.next() % UInt64(i % 3 == 0 ? m.count : hlen))
            m[pos] ^= UInt8(1 << (rng.next() % 8))
            if !trySafetensors(m) { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 100)
    }

    func testAbsurdCountsThrowBeforeAllocating() {
        func expect(_ b: Bytes, _ kind: ModelFileError.Kind, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try GGUFFile(bytes: b.b), line: line) { e in
                guard let e = e as? ModelFileError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(e.kind, kind, "\(e)", line: line)
                XCTAssertTrue(e.description.contains(fragment), "\(e)", line: line)
            }
        }
        var b = Bytes(); b.header(tensors: 0, kv: 1 << 60); expect(b, .truncated, "metadata count")
        b = Bytes(); b.header(tensors: 1 << 60, kv: 0); expect(b, .truncated, "tensor count")
        b = Bytes(); b.header(tensors: .max, kv: .max); expect(b, .truncated, "count")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.u64(1 << 62); b.b += [UInt8](repeating: 65, count: 64)
        expect(b, .truncated, "metadata key length")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(8); b.u64(.max); expect(b, .truncated, "length")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(9); b.u32(0); b.u64(1 << 60); b.b += [1, 2, 3]
        expect(b, .truncated, "array 'k'")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(9); b.u32(8); b.u64(1 << 40); b.u64(1)
        expect(b, .truncated, "array 'k'")
        // A byte array that really is in the file but would expand to ~24 bytes per element.
        let n = GGUFFile.maxMetadataElements + 1
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(9); b.u32(0); b.u64(UInt64(n))
        b.b += [UInt8](repeating: 0, count: n)
        expect(b, .unsupported, "metadata limit")
    }

    func testCraftedStructuralErrors() throws {
        func expect(_ bytes: [UInt8], _ kind: ModelFileError.Kind, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try GGUFFile(bytes: bytes, label: "model.gguf"), line: line) { e in
                guard let e = e as? ModelFileError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(e.kind, kind, "\(e)", line: line)
                XCTAssertTrue(e.description.contains(fragment), "\(e)", line: line)
                XCTAssertTrue(e.description.hasPrefix("model.gguf: "), "\(e)", line: line)
            }
        }
        var b = Bytes(); b.b = Array("GGML".utf8); b.u32(3); b.u64(0); b.u64(0); expect(b.b, .malformed, "bad magic")
        b = Bytes(); b.header(tensors: 0, kv: 0, version: 1); expect(b.b, .unsupported, "version 1")
        b = Bytes(); b.header(tensors: 0, kv: 0, version: 3 << 24); expect(b.b, .unsupported, "big-endian")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(13); b.u64(0); expect(b.b, .unsupported, "unknown value type 13")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(9); b.u32(77); b.u64(0); expect(b.b, .unsupported, "element type 77")
        b = Bytes(); b.header(tensors: 0, kv: 2); b.str("k"); b.u32(0); b.b.append(1); b.str("k"); b.u32(0); b.b.append(2)
        expect(b.b, .malformed, "duplicate metadata key 'k'")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(7); b.b.append(2); expect(b.b, .malformed, "bool")
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("general.alignment"); b.u32(4); b.u32(24); expect(b.b, .malformed, "alignment")
        // Arrays nested 100 deep are refused, not recursed into.
        b = Bytes(); b.header(tensors: 0, kv: 1); b.str("k"); b.u32(9)
        for _ in 0 ..< 100 { b.u32(9); b.u64(1) }
        b.b += [UInt8](repeating: 0, count: 64)
        expect(b.b, .malformed, "nested deeper")

        func tensorFile(_ infos: [(String, [UInt64], UInt32, UInt64)], dataBytes: Int) -> [UInt8] {
            var b = Bytes(); b.header(tensors: UInt64(infos.count), kv: 0)
            for (n, dims, t, off) in infos { b.str(n); b.u32(UInt32(dims.count)); dims.forEach { b.u64($0) }; b.u32(t); b.u64(off) }
            while b.b.count % 32 != 0 { b.b.append(0) }
            return b.b + [UInt8](repeating: 0, count: dataBytes)
        }
        XCTAssertNoThrow(try GGUFFile(bytes: tensorFile([("a", [4, 2], 0, 0), ("b", [8], 0, 32)], dataBytes: 64)))
        expect(tensorFile([("blk.0.attn_q.weight", [32], 99, 0)], dataBytes: 64), .unsupported, "tensor 'blk.0.attn_q.weight' has unknown type id 99")
        expect(tensorFile([("a", [1, 1, 1, 1, 1], 0, 0)], dataBytes: 64), .malformed, "5 dimensions")
        expect(tensorFile([("a", [4, 0], 0, 0)], dataBytes: 64), .malformed, "invalid dimension 0")
        expect(tensorFile([("a", [1 << 32, 1 << 32, 1 << 32], 0, 0)], dataBytes: 64), .malformed, "overflows")
        expect(tensorFile([("a", [4], 0, 8)], dataBytes: 64), .malformed, "not a multiple of the alignment")
        expect(tensorFile([("a", [16], 0, 0), ("b", [8], 0, 32)], dataBytes: 96), .malformed, "overlaps")
        expect(tensorFile([("a", [4], 0, 0), ("a", [4], 0, 32)], dataBytes: 64), .malformed, "duplicate tensor name 'a'")
        expect(tensorFile([("q", [48], 2, 0)], dataBytes: 64), .malformed, "block size 32")
        expect(tensorFile([("big", [1024], 0, 0)], dataBytes: 100), .truncated, "tensor 'big' data [offset ")
        expect(tensorFile([("big", [4], 0, 1 << 62)], dataBytes: 64), .malformed, "absurd")
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/x.gguf")) { XCTAssertEqual(($0 as? ModelFileError)?.kind, .io) }
    }

    func testCraftedSafetensorsErrors() {
        func file(_ json: String, data: Int, lenOverride: UInt64? = nil) -> [UInt8] {
            var b = Bytes(); let h = Array(json.utf8); b.u64(lenOverride ?? UInt64(h.count)); b.b += h
            return b.b + [UInt8](repeating: 0, count: data)
        }
        func expect(_ bytes: [UInt8], _ kind: ModelFileError.Kind, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try SafetensorsFile(bytes: bytes), line: line) { e in
                guard let e = e as? ModelFileError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(e.kind, kind, "\(e)", line: line)
                XCTAssertTrue(e.description.contains(fragment), "\(e)", line: line)
            }
        }
        let ok = #"{"__metadata__":{"a":"b"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertNoThrow(try SafetensorsFile(bytes: file(ok, data: 8)))
        expect(file(ok, data: 8, lenOverride: 1 << 62), .truncated, "header length")
        expect(file(ok, data: 4), .truncated, "extends past end of file")
        expect(file("[1,2]", data: 0), .malformed, "'{'")
        expect(file("{\"x\":", data: 0), .malformed, "not valid JSON")
        expect(file(#"{"x":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#, data: 8), .unsupported, "unknown dtype 'Q9'")
        expect(file(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 12), .malformed, "does not match")
        expect(file(#"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: 8), .malformed, "invalid shape")
        expect(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: 8), .malformed, "data_offsets")
        expect(file(#"{"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: 8), .malformed, "invalid shape")
        expect(file(#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#, data: 8), .malformed, "overflows")
        expect(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12), .malformed, "overlaps")
        expect(file(#"{"__metadata__":{"a":1}}"#, data: 0), .malformed, "__metadata__")
        expect(file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}}"#, data: 8), .malformed, "data_offsets")
        let deep = String(repeating: "[", count: 100_000)
        expect(file("{\"x\":" + deep, data: 0), .malformed, "JSON")
    }
}
