import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The project's one atomic file writer: bytes go to a temp file in the destination folder, which is
/// fsync'ed and renamed over the destination on `commit()`, and the folder is fsync'ed so the rename survives a
/// crash. Readers therefore see either the old file or the complete new one. If `commit()` is never reached the
/// temp file is removed. Every module writes its outputs through this (`write(_:to:)` for whole buffers).
public final class AtomicWriter {
    public let path: String
    private let tempPath: String
    private var fd: Int32
    private var done = false

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        tempPath = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw ModelFileError(.io, path: path, "cannot create temp file \(tempPath): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        if !done { close(fd); unlink(tempPath) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, min(left, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelFileError(.io, path: path, "write failed: \(String(cString: strerror(errno)))")
            }
            p += n
            left -= n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Flushes to disk and renames into place.
    public func commit() throws {
        if fsync(fd) != 0 {
            throw ModelFileError(.io, path: path, "fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        done = true
        if rename(tempPath, path) != 0 {
            let msg = String(cString: strerror(errno))
            unlink(tempPath)
            throw ModelFileError(.io, path: path, "rename from temp file failed: \(msg)")
        }
        // Persist the directory entry too, best effort.
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Writes `data` as the whole new content of `path`, creating its folder if needed.
    public static func write(_ data: Data, to path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ModelFileError(.io, path: path, "cannot create folder \(dir.path): \(error.localizedDescription)")
        }
        let w = try AtomicWriter(path: path)
        try data.withUnsafeBytes { try w.write($0) }
        try w.commit()
    }
}
