import Foundation

/// A small RFC 4180 reader: comma-separated, `"`-quoted fields, `""` as an escaped quote inside quotes,
/// CR, LF or CRLF record separators, newlines allowed inside quoted fields. A leading BOM is ignored.
/// Lenient where RFC 4180 is silent: text after a closing quote up to the next separator is appended
/// (what spreadsheet exporters do), and a blank line is skipped rather than returned as a one-field row.
public struct CSVTable: Sendable {
    public struct Row: Sendable {
        /// 1-based physical line on which the record starts (for error messages).
        public var line: Int
        public var fields: [String]
    }

    public var header: [String]
    public var rows: [Row]

    public func columnIndex(_ candidates: [String]) -> Int? {
        for c in candidates {
            if let i = header.firstIndex(of: c) { return i }
        }
        // Exact match preferred; fall back to case-insensitive, trimmed headers.
        let norm = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for c in candidates {
            if let i = norm.firstIndex(of: c.lowercased()) { return i }
        }
        return nil
    }

    /// Parses CSV text. `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws -> CSVTable {
        var records: [Row] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1
        var recordLine = 1
        var inQuotes = false
        var quoteStartLine = 1
        var fieldWasQuoted = false
        var afterClosingQuote = false

        let bytes = Array(text.utf8)
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }

        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            fieldWasQuoted = false
            afterClosingQuote = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) {
                records.append(Row(line: recordLine, fields: fields))
            }
            fields.removeAll(keepingCapacity: true)
        }

        var i = start
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if inQuotes {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < n, bytes[i + 1] == UInt8(ascii: "\"") {
                        field.append(b); i += 2; continue
                    }
                    inQuotes = false
                    afterClosingQuote = true
                    i += 1; continue
                }
                if b == UInt8(ascii: "\n") { line += 1 }
                else if b == UInt8(ascii: "\r") {
                    // Count CRLF or lone CR as one line break; the bytes themselves are kept verbatim.
                    if !(i + 1 < n && bytes[i + 1] == UInt8(ascii: "\n")) { line += 1 }
                }
                field.append(b); i += 1; continue
            }
            switch b {
            case UInt8(ascii: ","):
                endField(); i += 1
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                endRecord()
                if b == UInt8(ascii: "\r"), i + 1 < n, bytes[i + 1] == UInt8(ascii: "\n") { i += 2 } else { i += 1 }
                line += 1
                recordLine = line
            case UInt8(ascii: "\""):
                if field.isEmpty && !fieldWasQuoted && !afterClosingQuote {
                    inQuotes = true
                    fieldWasQuoted = true
                    quoteStartLine = line
                } else {
                    // A bare quote in an unquoted field: keep it literally rather than fail.
                    field.append(b)
                }
                i += 1
            default:
                field.append(b); i += 1
            }
        }
        if inQuotes {
            throw EvaluationError.malformed(path: source, line: quoteStartLine,
                                            reason: "unterminated quoted field (opened here, never closed)")
        }
        if !field.isEmpty || !fields.isEmpty || fieldWasQuoted { endRecord() }

        guard let first = records.first else {
            throw EvaluationError.malformed(path: source, line: 1, reason: "empty CSV (no header row)")
        }
        return CSVTable(header: first.fields, rows: Array(records.dropFirst()))
    }
}
