import Foundation
import ModelFiles
#if canImport(Glibc)
import Glibc
#endif

/// Writes files and folders so that a reader sees either the old version or the complete new one,
/// never a torn file: write a temp sibling, fsync, rename over the target.
public enum AtomicFile {
    /// One file, through ModelFiles' `AtomicWriter` (temp sibling, fsync of file and folder, rename).
    public static func write(_ data: Data, to path: String) throws {
        do { try AtomicWriter.write(data, to: path) } catch let e as ModelFileError {
            throw RuntimeError.io(path: path, reason: e.reason)
        }
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
