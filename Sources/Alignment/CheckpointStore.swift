import Foundation
import ModelFiles
import Tensors

public enum CheckpointError: Error, CustomStringConvertible {
    case io(path: String, reason: String)
    case corrupt(path: String, reason: String)
    public var description: String {
        switch self {
        case let .io(p, r): return "\(p): \(r)"
        case let .corrupt(p, r): return "\(p): corrupt checkpoint: \(r)"
        }
    }
}

/// One tensor a checkpoint saves or restores: a view of memory owned elsewhere (weights, moments).
public struct CheckpointTensor {
    public enum DType: String, Codable, Sendable {
        case f32, bf16
        public var size: Int { self == .f32 ? 4 : 2 }
    }
    public let name: String
    public let shape: [Int]
    public let dtype: DType
    public let raw: UnsafeMutableRawPointer
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.size }

    public init(name: String, tensor: Tensor) {
        self.name = name; shape = tensor.shape; dtype = .f32; raw = UnsafeMutableRawPointer(tensor.pointer)
    }

    public init(name: String, moment: MomentBuffer) {
        self.name = name; shape = moment.shape; dtype = moment.format == .f32 ? .f32 : .bf16; raw = moment.raw
    }
}

/// Checkpoint tensor storage: raw little-endian `tensors-<tag>.bin` + `manifest.json` naming each tensor's
/// shape, dtype (f32, or bf16 for bf16 optimizer moments) and byte offset, plus an opaque JSON `state`.
/// Format 1 (f32 only, offsets counted in floats) is still read. Crash safety: the tensor file is written under a
/// temp name and renamed, then the manifest likewise; the manifest is the commit point, and stale tensor files
/// are removed only after it is in place. Tensors stream straight from and into their memory, so saving or
/// restoring a model needs no second copy of it.
public enum CheckpointStore {
    public static let format = "safeneuron-checkpoint-2"
    static let formatV1 = "safeneuron-checkpoint-1"

    struct Entry: Codable {
        var name: String; var shape: [Int]
        /// Format 2: bytes from the start of the tensor file. Format 1: floats.
        var offset: Int
        var dtype: CheckpointTensor.DType?
    }
    struct Manifest: Codable { var format: String; var tensorFile: String; var tensors: [Entry]; var state: Data }

    public static func save(_ dir: URL, tag: String, tensors: [CheckpointTensor], state: Data) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError.io(path: dir.path, reason: "cannot create directory: \(error)")
        }
        let binName = "tensors-\(tag).bin"
        var entries: [Entry] = [], off = 0
        for t in tensors { entries.append(Entry(name: t.name, shape: t.shape, offset: off, dtype: t.dtype)); off += t.byteCount }
        // Tensors first, then the manifest that names them: a kill between the two leaves the previous manifest,
        // whose tensor file is still there. Both through the project's one atomic writer.
        do {
            let w = try AtomicWriter(path: dir.appendingPathComponent(binName).path)
            for t in tensors {
                #if _endian(big)
                #error("checkpoints are written in the host's byte order, which must be little-endian")
                #endif
                try w.write(UnsafeRawBufferPointer(start: t.raw, count: t.byteCount))
            }
            try w.commit()
            let man = Manifest(format: format, tensorFile: binName, tensors: entries, state: state)
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            try AtomicWriter.write(try enc.encode(man), to: dir.appendingPathComponent("manifest.json").path)
        } catch let e as ModelFileError {
            throw CheckpointError.io(path: e.path, reason: e.reason)
        } catch let e as EncodingError {
            throw CheckpointError.io(path: dir.appendingPathComponent("manifest.json").path, reason: "\(e)")
        }
        if let items = try? fm.contentsOfDirectory(atPath: dir.path) {
            for f in items where f.hasPrefix("tensors-") && f.hasSuffix(".bin") && f != binName {
                try? fm.removeItem(at: dir.appendingPathComponent(f))
            }
        }
    }

    /// Loads the manifest's state and copies each named tensor into `targets` (shapes and dtypes must match).
    public static func load(_ dir: URL, into targets: [CheckpointTensor]) throws -> Data {
        let mpath = dir.appendingPathComponent("manifest.json")
        let man: Manifest
        do { man = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: mpath)) } catch {
            throw CheckpointError.corrupt(path: mpath.path, reason: "unreadable manifest: \(error)")
        }
        guard man.format == format || man.format == formatV1 else {
            throw CheckpointError.corrupt(path: mpath.path, reason: "format \(man.format)")
        }
        let offsetUnit = man.format == formatV1 ? 4 : 1
        guard !man.tensorFile.contains("/"), man.tensorFile.hasPrefix("tensors-") else {
            throw CheckpointError.corrupt(path: mpath.path, reason: "bad tensor file name")
        }
        let bpath = dir.appendingPathComponent(man.tensorFile)
        guard let h = FileHandle(forReadingAtPath: bpath.path) else { throw CheckpointError.io(path: bpath.path, reason: "cannot open") }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()).map(Int.init) ?? 0
        var byName: [String: Entry] = [:]
        for e in man.tensors { byName[e.name] = e }
        for t in targets {
            guard let e = byName[t.name] else { throw CheckpointError.corrupt(path: mpath.path, reason: "missing tensor \(t.name)") }
            guard e.shape == t.shape else {
                throw CheckpointError.corrupt(path: mpath.path, reason: "tensor \(t.name) has shape \(e.shape), expected \(t.shape)")
            }
            let dtype = e.dtype ?? .f32
            guard dtype == t.dtype else {
                throw CheckpointError.corrupt(path: mpath.path, reason: "tensor \(t.name) is \(dtype.rawValue), this run keeps it as \(t.dtype.rawValue) (resume with the same --moments)")
            }
            let (start, overflow) = e.offset.multipliedReportingOverflow(by: offsetUnit)
            guard e.offset >= 0, !overflow, start <= size, t.byteCount <= size - start else {
                throw CheckpointError.corrupt(path: bpath.path, reason: "tensor \(t.name) at byte offset \(start) runs past \(size) bytes")
            }
            do {
                try h.seek(toOffset: UInt64(start))
                // In pieces, straight into the target: a large tensor needs no second copy in memory.
                var done = 0
                while done < t.byteCount {
                    let n = min(64 << 20, t.byteCount - done)
                    guard let d = try h.read(upToCount: n), d.count == n else {
                        throw CheckpointError.corrupt(path: bpath.path, reason: "short read of \(t.name) at byte \(start + done)")
                    }
                    d.withUnsafeBytes { src in (t.raw + done).copyMemory(from: src.baseAddress!, byteCount: n) }
                    done += n
                }
            } catch let e as CheckpointError { throw e } catch {
                throw CheckpointError.io(path: bpath.path, reason: "\(error)")
            }
        }
        return man.state
    }
}
