import Foundation

/// Writes float tensors to a `.safetensors` file, atomically.
///
/// Tensors are laid out sorted by name (what the reference implementation does when all share a
/// dtype); the JSON header is padded with spaces to a multiple of 8 bytes. `.bf16` rounds to
/// nearest even exactly like torch's `.to(torch.bfloat16)` on CPU tensors; any NaN becomes
/// 0xFFFF (a NaN), which is what torch's vectorised CPU conversion produces (its scalar path,
/// used only for 0-dim tensors, gives 0x7FC0 instead).
public enum SafetensorsWriter {
    public enum DType: Sendable {
        case f32, bf16
        var name: String { self == .f32 ? "F32" : "BF16" }
        var size: Int { self == .f32 ? 4 : 2 }
    }

    /// torch's float → bfloat16 rounding (round-to-nearest-even on the bit pattern).
    @inline(__always)
    public static func bf16Bits(_ x: Float) -> UInt16 {
        if x.isNaN { return 0xFFFF }
        let u = x.bitPattern
        let bias = ((u >> 16) & 1) &+ 0x7FFF
        return UInt16(truncatingIfNeeded: (u &+ bias) >> 16)
    }

    public static func write(path: String, tensors: [(name: String, shape: [Int], values: [Float])],
                             dtype: DType = .f32, metadata: [String: String] = [:]) throws {
        // Borrow every array's storage for the duration of the write without copying.
        func go(_ i: Int, _ acc: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)]) throws {
            if i == tensors.count {
                try write(path: path, tensors: acc, dtype: dtype, metadata: metadata)
                return
            }
            try tensors[i].values.withUnsafeBufferPointer { buf in
                try go(i + 1, acc + [(tensors[i].name, tensors[i].shape, buf)])
            }
        }
        if tensors.count > 1000 {
            // Avoid deep recursion for big models: copy into one contiguous buffer instead.
            let total = tensors.reduce(0) { $0 + $1.values.count }
            var flat = [Float](); flat.reserveCapacity(total)
            for t in tensors { flat.append(contentsOf: t.values) }
            try flat.withUnsafeBufferPointer { all in
                var off = 0
                var acc = [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)]()
                for t in tensors {
                    acc.append((t.name, t.shape, UnsafeBufferPointer(rebasing: all[off ..< off + t.values.count])))
                    off += t.values.count
                }
                try write(path: path, tensors: acc, dtype: dtype, metadata: metadata)
            }
            return
        }
        try go(0, [])
    }

    public static func write(path: String, tensors: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)],
                             dtype: DType = .f32, metadata: [String: String] = [:]) throws {
        var seen = Set<String>()
        for t in tensors {
            guard !t.name.isEmpty, t.name != "__metadata__", seen.insert(t.name).inserted else {
                throw ModelFileError(.invalidArgument, path: path, "invalid or duplicate tensor name '\(t.name)'")
            }
            guard let n = checkedProduct(t.shape), n == t.values.count else {
                throw ModelFileError(.invalidArgument, path: path, "tensor '\(t.name)' shape \(t.shape) does not match \(t.values.count) values")
            }
        }
        let order = tensors.indices.sorted { tensors[$0].name < tensors[$1].name }

        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            header += "},"
        }
        var offset = 0
        var entries = [String]()
        for i in order {
            let t = tensors[i]
            let n = t.values.count * dtype.size
            entries.append("\(jsonString(t.name)):{\"dtype\":\"\(dtype.name)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + n)]}")
            offset += n
        }
        header += entries.joined(separator: ",") + "}"
        var hbytes = Array(header.utf8)
        while hbytes.count % 8 != 0 { hbytes.append(UInt8(ascii: " ")) }

        let w = try AtomicWriter(path: path)
        var len = UInt64(hbytes.count).littleEndian
        try withUnsafeBytes(of: &len) { try w.write($0) }
        try w.write(hbytes)
        let chunk = 1 << 16
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * 4, alignment: 16)
        defer { scratch.deallocate() }
        for i in order {
            let v = tensors[i].values
            var s = 0
            while s < v.count {
                let e = min(v.count, s + chunk)
                switch dtype {
                case .f32:
                    let o = scratch.baseAddress!.assumingMemoryBound(to: UInt32.self)
                    for k in s ..< e { o[k - s] = v[k].bitPattern.littleEndian }
                    try w.write(UnsafeRawBufferPointer(rebasing: scratch[0 ..< (e - s) * 4]))
                case .bf16:
                    let o = scratch.baseAddress!.assumingMemoryBound(to: UInt16.self)
                    for k in s ..< e { o[k - s] = bf16Bits(v[k]).littleEndian }
                    try w.write(UnsafeRawBufferPointer(rebasing: scratch[0 ..< (e - s) * 2]))
                }
                s = e
            }
        }
        try w.commit()
    }

    /// Product of non-negative dims, nil on a negative dim or overflow (never traps).
    static func checkedProduct(_ shape: [Int]) -> Int? {
        var p = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: d)
            if o { return nil }
            p = r
        }
        return p
    }

    static func jsonString(_ s: String) -> String { JSONText.quote(s) }
}

/// The project's JSON string escaper for files we write by hand (safetensors headers, neurons.json): quotes,
/// backslashes and control characters escaped, everything else written as UTF-8. (Jinja's `tojson` keeps its own
/// escaper, which must imitate Python's json.dumps.)
public enum JSONText {
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
