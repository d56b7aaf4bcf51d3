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

/// Checkpoint tensor storage: raw little-endian f32 `tensors-<tag>.bin` + `manifest.json` naming each tensor's
/// shape and float offset, plus an opaque JSON `state`. Kept separate so a safetensors writer can replace it.
/// Crash safety: the tensor file is written under a temp name and renamed, then the manifest likewise; the
/// manifest is the commit point, and stale tensor files are removed only after it is in place.
public enum CheckpointStore {
    public static let format = "safeneuron-checkpoint-1"

    struct Entry: Codable { var name: String; var shape: [Int]; var offset: Int }
    struct Manifest: Codable { var format: String; var tensorFile: String; var tensors: [Entry]; var state: Data }

    public static func save(_ dir: URL, tag: String, tensors: [(String, Tensor)], state: Data) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError.io(path: dir.path, reason: "cannot create directory: \(error)")
        }
        let binName = "tensors-\(tag).bin"
        var entries: [Entry] = [], off = 0
        for (n, t) in tensors { entries.append(Entry(name: n, shape: t.shape, offset: off)); off += t.count }
        // Tensors first, then the manifest that names them: a kill between the two leaves the previous manifest,
        // whose tensor file is still there. Both through the project's one atomic writer.
        do {
            let w = try AtomicWriter(path: dir.appendingPathComponent(binName).path)
            for (_, t) in tensors { try w.write(UnsafeRawBufferPointer(start: t.pointer, count: t.count * 4)) }
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

    /// Loads the manifest's state and copies each named tensor into `targets` (shapes must match exactly).
    public static func load(_ dir: URL, into targets: [(String, Tensor)]) throws -> Data {
        let mpath = dir.appendingPathComponent("manifest.json")
        let man: Manifest
        do { man = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: mpath)) } catch {
            throw CheckpointError.corrupt(path: mpath.path, reason: "unreadable manifest: \(error)")
        }
        guard man.format == format else { throw CheckpointError.corrupt(path: mpath.path, reason: "format \(man.format)") }
        guard !man.tensorFile.contains("/"), man.tensorFile.hasPrefix("tensors-") else {
            throw CheckpointError.corrupt(path: mpath.path, reason: "bad tensor file name")
        }
        let bpath = dir.appendingPathComponent(man.tensorFile)
        guard let h = FileHandle(forReadingAtPath: bpath.path) else { throw CheckpointError.io(path: bpath.path, reason: "cannot open") }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()).map(Int.init) ?? 0
        var byName: [String: Entry] = [:]
        for e in man.tensors { byName[e.name] = e }
        for (name, t) in targets {
            guard let e = byName[name] else { throw CheckpointError.corrupt(path: mpath.path, reason: "missing tensor \(name)") }
            guard e.shape == t.shape else {
                throw CheckpointError.corrupt(path: mpath.path, reason: "tensor \(name) has shape \(e.shape), expected \(t.shape)")
            }
            guard e.offset >= 0, e.offset <= (size / 4), t.count <= size / 4 - e.offset else {
                throw CheckpointError.corrupt(path: bpath.path, reason: "tensor \(name) at float offset \(e.offset) runs past \(size) bytes")
            }
            do {
                try h.seek(toOffset: UInt64(e.offset * 4))
                guard let d = try h.read(upToCount: t.count * 4), d.count == t.count * 4 else {
                    throw CheckpointError.corrupt(path: bpath.path, reason: "short read of \(name)")
                }
                d.withUnsafeBytes { raw in
                    for i in 0..<t.count { t.pointer[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                }
            } catch let e as CheckpointError { throw e } catch {
                throw CheckpointError.io(path: bpath.path, reason: "\(error)")
            }
        }
        return man.state
    }
}
