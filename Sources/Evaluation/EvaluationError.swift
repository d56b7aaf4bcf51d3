import Foundation
import ModelFiles

/// Errors from reading prompt/record files and writing evaluation outputs.
/// Every case names the file (or source) it came from, and where applicable the 1-based line.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case io(path: String, reason: String)
    case malformed(path: String, line: Int, reason: String)
    case missingColumn(path: String, wanted: [String], found: [String])
    case unsupportedFormat(path: String, reason: String)
    case unknownDataset(name: String, known: [String])
    case invalidArgument(reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .malformed(path, line, reason): return "\(path):\(line): \(reason)"
        case let .missingColumn(path, wanted, found):
            return "\(path):1: missing column (expected one of \(wanted.joined(separator: ", "))); header has \(found.map(printableForError).joined(separator: ", "))"
        case let .unsupportedFormat(path, reason): return "\(path): \(reason)"
        case let .unknownDataset(name, known):
            return "unknown dataset '\(name)' (known: \(known.joined(separator: ", ")))"
        case let .invalidArgument(reason): return "invalid argument: \(reason)"
        }
    }
}

enum FileIO {
    /// Reads a whole text file as UTF-8, stripping a leading BOM.
    static func readText(_ url: URL, maxBytes: Int = 256 << 20) throws -> String {
        let path = url.path
        let attrs: [FileAttributeKey: Any]
        do { attrs = try FileManager.default.attributesOfItem(atPath: path) } catch {
            throw EvaluationError.io(path: path, reason: "cannot open (\(error.localizedDescription))")
        }
        if let size = (attrs[.size] as? NSNumber)?.intValue, size > maxBytes {
            throw EvaluationError.io(path: path, reason: "file is \(size) bytes, over the \(maxBytes)-byte limit")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvaluationError.io(path: path, reason: "cannot read (\(error.localizedDescription))")
        }
        guard var text = String(data: data, encoding: .utf8) else {
            throw EvaluationError.io(path: path, reason: "not valid UTF-8")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        return text
    }

    /// Writes through the project's one atomic writer (`AtomicWriter`: temp file, fsync, rename, folder fsync).
    static func writeAtomically(_ data: Data, to url: URL) throws {
        do { try AtomicWriter.write(data, to: url.path) } catch let e as ModelFileError {
            throw EvaluationError.io(path: url.path, reason: e.reason)
        }
    }

    static func writeAtomically(_ text: String, to url: URL) throws {
        try writeAtomically(Data(text.utf8), to: url)
    }

}

/// Text from a file with control characters escaped, so an error message stays on one line.
func printableForError(_ s: String) -> String {
    s.unicodeScalars.map { $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
}
