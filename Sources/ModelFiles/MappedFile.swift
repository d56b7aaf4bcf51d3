import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file.
///
/// Model files can be several GB; mapping lets the parsers look at headers and decode single
/// tensors without reading everything. The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeMutableRawPointer?
    private let isMapped: Bool

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw ModelFileError(.io, path: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            throw ModelFileError(.io, path: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw ModelFileError(.io, path: path, "not a regular file")
        }
        count = Int(st.st_size)
        isMapped = true
        if count == 0 { base = nil; return }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw ModelFileError(.io, path: path, "cannot mmap \(count) bytes: \(String(cString: strerror(errno)))")
        }
        base = p
    }

    /// An in-memory copy labelled `label` (used for errors); lets tests parse mutated bytes
    /// without touching the disk.
    public init(copying data: [UInt8], label: String) {
        path = label
        count = data.count
        isMapped = false
        if count == 0 { base = nil; return }
        let n = data.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        data.withUnsafeBytes { src in if let s = src.baseAddress { p.copyMemory(from: s, byteCount: n) } }
        base = p
    }

    deinit {
        guard let base else { return }
        if isMapped { munmap(base, count) } else { base.deallocate() }
    }

    /// The whole mapping. Valid only while `self` is alive.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0) }, count: count)
    }
}

/// Bounds-checked little-endian cursor over untrusted bytes. Every read checks remaining length
/// first, so a hostile count can never make us read (or allocate) past the buffer.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var pos: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String, pos: Int = 0) {
        self.bytes = bytes; self.path = path; self.pos = pos
    }

    var remaining: Int { bytes.count - pos }

    func fail(_ kind: ModelFileError.Kind = .malformed, at: Int? = nil, _ reason: String) -> ModelFileError {
        ModelFileError(kind, path: path, offset: at ?? pos, reason)
    }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n < 0 || n > remaining {
            throw fail(.truncated, "\(what()) needs \(n) bytes but only \(remaining) remain (file size \(bytes.count))")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = bytes.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func skip(_ n: Int, _ what: @autoclosure () -> String) throws {
        try need(n, what())
        pos += n
    }
}
