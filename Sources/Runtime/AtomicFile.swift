import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes files and folders so that a reader sees either the old version or the complete new one,
/// never a torn file: write a temp sibling, fsync, rename over the target.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw RuntimeError.io(path: path, reason: "cannot create temp file: \(String(cString: strerror(errno)))") }
        var ok = false
        defer { if !ok { unlink(tmp.path) } }
        try data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    let why = String(cString: strerror(errno))
                    close(fd)
                    throw RuntimeError.io(path: path, reason: "write failed: \(why)")
                }
                off += n
            }
        }
        if fsync(fd) != 0 {
            let why = String(cString: strerror(errno)); close(fd)
            throw RuntimeError.io(path: path, reason: "fsync failed: \(why)")
        }
        close(fd)
        guard rename(tmp.path, path) == 0 else {
            throw RuntimeError.io(path: path, reason: "rename failed: \(String(cString: strerror(errno)))")
        }
        ok = true
    }

    public static func write(_ string: String, to path: String) throws { try write(Data(string.utf8), to: path) }

    /// Builds a folder in a temp sibling with `fill`, then swaps it into place. A previous folder at
    /// `path` is kept until the new one is complete.
    public static func writeFolder(_ path: String, _ fill: (String) throws -> Void) throws {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: path)
        let parent = url.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        do { try fill(tmp.path) } catch { try? fm.removeItem(at: tmp); throw error }
        let old = parent.appendingPathComponent(".\(url.lastPathComponent).old-\(getpid())")
        if fm.fileExists(atPath: path) { try fm.moveItem(at: url, to: old) }
        do { try fm.moveItem(at: tmp, to: url) } catch {
            if fm.fileExists(atPath: old.path) { try? fm.moveItem(at: old, to: url) }
            throw RuntimeError.io(path: path, reason: "cannot move finished folder into place: \(error)")
        }
        try? fm.removeItem(at: old)
    }
}
