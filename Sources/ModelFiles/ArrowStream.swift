import Foundation

// Why this lives in ModelFiles: this module is where the project reads untrusted binary containers (GGUF,
// safetensors): it owns the memory map and the error type that carries the file, the byte offset and the
// reason. An Arrow IPC stream is one more such container. Its only user today is Evaluation's MMLU loader,
// but nothing here knows about benchmarks, and ModelFilesTests already hosts the hostile-input tests this
// reader needs.

/// A column type this reader decodes. Everything else in a schema is refused by name.
public indirect enum ArrowType: Sendable, Equatable, CustomStringConvertible {
    case utf8
    case largeUtf8
    case int32
    case int64
    /// A list (32-bit offsets) or large list (64-bit offsets) of strings.
    case list(element: ArrowType)
    case largeList(element: ArrowType)

    public var description: String {
        switch self {
        case .utf8: return "Utf8"
        case .largeUtf8: return "LargeUtf8"
        case .int32: return "Int32"
        case .int64: return "Int64"
        case let .list(e): return "List<\(e)>"
        case let .largeList(e): return "LargeList<\(e)>"
        }
    }
}

public struct ArrowField: Sendable, Equatable {
    public var name: String
    public var type: ArrowType
    public var nullable: Bool
    /// File offset of the field's entry in the schema message, for errors about the column as a whole.
    public var schemaOffset: Int
}

/// One decoded column, all record batches concatenated. `nil` entries are nulls (validity bit clear).
public enum ArrowColumn: Sendable, Equatable {
    case strings([String?])
    case integers([Int64?])
    case stringLists([[String?]?])

    var count: Int {
        switch self {
        case let .strings(v): return v.count
        case let .integers(v): return v.count
        case let .stringLists(v): return v.count
        }
    }
}

/// The rows of an Arrow IPC stream: its schema's fields and one column per field.
public struct ArrowTable: Sendable {
    public let path: String
    public let fields: [ArrowField]
    public let columns: [ArrowColumn]
    public let rowCount: Int
    public let recordBatchCount: Int

    func column(_ name: String) throws -> (field: ArrowField, column: ArrowColumn) {
        guard let i = fields.firstIndex(where: { $0.name == name }) else {
            throw ModelFileError(.notFound, path: path,
                                 "no column '\(name)' (columns: \(fields.map { "'\($0.name)' \($0.type)" }.joined(separator: ", ")))")
        }
        return (fields[i], columns[i])
    }

    /// The Utf8 / LargeUtf8 column `name`; a column of another type is an error naming both types.
    public func strings(_ name: String) throws -> [String?] {
        let (f, c) = try column(name)
        guard case let .strings(v) = c else { throw wrongType(f, expected: "Utf8 or LargeUtf8") }
        return v
    }

    /// The Int32 / Int64 column `name` (a Hugging Face ClassLabel is Int64).
    public func integers(_ name: String) throws -> [Int64?] {
        let (f, c) = try column(name)
        guard case let .integers(v) = c else { throw wrongType(f, expected: "Int32 or Int64") }
        return v
    }

    /// The List<Utf8> column `name` (a Hugging Face `Sequence(Value("string"))`).
    public func stringLists(_ name: String) throws -> [[String?]?] {
        let (f, c) = try column(name)
        guard case let .stringLists(v) = c else { throw wrongType(f, expected: "List<Utf8>") }
        return v
    }

    private func wrongType(_ f: ArrowField, expected: String) -> ModelFileError {
        ModelFileError(.malformed, path: path, offset: f.schemaOffset, "column '\(f.name)' is \(f.type), expected \(expected)")
    }
}

/// Reader for the Arrow IPC streaming format, the layout of Hugging Face `datasets` `save_to_disk` files
/// (`data-00000-of-00001.arrow`): a sequence of messages, each a FlatBuffers `Message` (framed by the
/// continuation marker 0xFFFFFFFF and an int32 length, or by the pre-0.15 bare int32 length) followed by its
/// body; first a Schema, then RecordBatches, ended by a zero length or the end of the file.
///
/// Only what MMLU's files need is decoded: little-endian, metadata version V4 or V5, uncompressed bodies, and
/// columns of type Utf8, LargeUtf8, Int32, Int64 and List/LargeList of Utf8/LargeUtf8, with validity bitmaps.
/// Anything else (other types, dictionary encoding, compressed bodies) is refused with an error naming it.
/// Every offset, length and count taken from the file is checked against the bytes that hold it before it is
/// used or allocated for, so a damaged or hostile file throws a `ModelFileError` naming the file, the byte offset
/// and the field, and never reads out of bounds.
public enum ArrowStreamReader {
    public static func read(path: String) throws -> ArrowTable {
        let file = try MappedFile(path: path)
        return try withExtendedLifetime(file) { try read(file.bytes, path: path) }
    }

    /// Parses bytes held in memory; `label` stands for the path in errors.
    public static func read(bytes: [UInt8], label: String) throws -> ArrowTable {
        try bytes.withUnsafeBytes { try read($0, path: label) }
    }

    public static func read(_ bytes: UnsafeRawBufferPointer, path: String) throws -> ArrowTable {
        var parser = StreamParser(bytes: bytes, path: path)
        return try parser.run()
    }
}

// MARK: - FlatBuffers

/// A FlatBuffers region (one message's metadata) inside the file. Positions are file offsets, so errors
/// point at the byte in the file; every read is checked against the region.
private struct FlatRegion {
    let bytes: UnsafeRawBufferPointer
    let start: Int
    let end: Int
    let path: String

    func fail(_ kind: ModelFileError.Kind = .malformed, at: Int, _ what: String, _ reason: String) -> ModelFileError {
        ModelFileError(kind, path: path, offset: at, "\(what): \(reason)")
    }

    func load<T: FixedWidthInteger>(_: T.Type, at p: Int, _ what: @autoclosure () -> String) throws -> T {
        let size = MemoryLayout<T>.size
        guard p >= start, p <= end - size else {
            throw fail(.truncated, at: p, what(), "\(size)-byte value lies outside the message metadata (bytes \(start)..<\(end))")
        }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: p, as: T.self))
    }

    /// The table the root offset (the region's first 4 bytes) points at.
    func root(_ what: String) throws -> FlatTable {
        let offset = Int(try load(UInt32.self, at: start, "\(what) root offset"))
        return try FlatTable(region: self, position: start + offset, what: what)
    }
}

private struct FlatTable {
    let region: FlatRegion
    let position: Int
    let vtable: Int
    let vtableSize: Int
    let inlineSize: Int
    let what: String

    init(region: FlatRegion, position: Int, what: String) throws {
        self.region = region; self.position = position; self.what = what
        // A table starts with a signed offset back (or forward) to its vtable: [vtable size, table size, field offsets…].
        let back = Int(try region.load(Int32.self, at: position, "\(what) vtable offset"))
        vtable = position - back
        vtableSize = Int(try region.load(UInt16.self, at: vtable, "\(what) vtable size"))
        inlineSize = Int(try region.load(UInt16.self, at: vtable + 2, "\(what) table size"))
        guard vtableSize >= 4, vtableSize % 2 == 0, vtable <= region.end - vtableSize else {
            throw region.fail(at: vtable, what, "vtable of \(vtableSize) bytes does not fit the message metadata")
        }
        guard inlineSize >= 4, position <= region.end - inlineSize else {
            throw region.fail(at: position, what, "table of \(inlineSize) bytes does not fit the message metadata")
        }
    }

    /// File offset of field `slot`'s inline value of `size` bytes, or nil when the field is absent (default).
    private func fieldPosition(_ slot: Int, size: Int, _ name: String) throws -> Int? {
        let entry = 4 + 2 * slot
        guard entry + 2 <= vtableSize else { return nil }
        let offset = Int(try region.load(UInt16.self, at: vtable + entry, "\(what).\(name) vtable entry"))
        if offset == 0 { return nil }
        guard offset >= 4, offset + size <= inlineSize else {
            throw region.fail(at: position, "\(what).\(name)", "field at table offset \(offset) lies outside its \(inlineSize)-byte table")
        }
        return position + offset
    }

    func scalar<T: FixedWidthInteger>(_ slot: Int, _ name: String, default value: T) throws -> T {
        guard let p = try fieldPosition(slot, size: MemoryLayout<T>.size, name) else { return value }
        return try region.load(T.self, at: p, "\(what).\(name)")
    }

    func has(_ slot: Int, _ name: String) throws -> Bool { try fieldPosition(slot, size: 4, name) != nil }

    /// Where an offset field (table, vector or string) points, or nil when absent.
    private func target(_ slot: Int, _ name: String) throws -> Int? {
        guard let p = try fieldPosition(slot, size: 4, name) else { return nil }
        let offset = Int(try region.load(UInt32.self, at: p, "\(what).\(name)"))
        let t = p + offset
        guard t <= region.end - 4 else {
            throw region.fail(.truncated, at: p, "\(what).\(name)", "offset \(offset) points past the message metadata")
        }
        return t
    }

    func table(_ slot: Int, _ name: String) throws -> FlatTable? {
        guard let t = try target(slot, name) else { return nil }
        return try FlatTable(region: region, position: t, what: "\(what).\(name)")
    }

    func vector(_ slot: Int, _ name: String, elementSize: Int) throws -> FlatVector? {
        guard let t = try target(slot, name) else { return nil }
        return try FlatVector(region: region, position: t, elementSize: elementSize, what: "\(what).\(name)")
    }

    func string(_ slot: Int, _ name: String) throws -> String? {
        guard let v = try vector(slot, name, elementSize: 1) else { return nil }
        let raw = UnsafeRawBufferPointer(rebasing: region.bytes[v.start..<v.start + v.count])
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw region.fail(at: v.start, "\(what).\(name)", "not valid UTF-8")
        }
        return s
    }
}

private struct FlatVector {
    let region: FlatRegion
    let start: Int
    let count: Int
    let elementSize: Int
    let what: String

    init(region: FlatRegion, position: Int, elementSize: Int, what: String) throws {
        self.region = region; self.elementSize = elementSize; self.what = what
        count = Int(try region.load(UInt32.self, at: position, "\(what) length"))
        start = position + 4
        guard count <= (region.end - start) / elementSize else {
            throw region.fail(.truncated, at: position, what,
                              "\(count) elements of \(elementSize) bytes do not fit the \(region.end - start) bytes left of the message metadata")
        }
    }

    func position(_ i: Int) -> Int { start + i * elementSize }

    /// Element `i` of a vector of tables (each element an offset from its own position).
    func table(_ i: Int) throws -> FlatTable {
        let p = position(i)
        let offset = Int(try region.load(UInt32.self, at: p, "\(what)[\(i)]"))
        return try FlatTable(region: region, position: p + offset, what: "\(what)[\(i)]")
    }

    func int64(_ i: Int, field: Int = 0) throws -> Int64 {
        try region.load(Int64.self, at: position(i) + 8 * field, "\(what)[\(i)]")
    }
}

// MARK: - Messages

/// Message header union tags (Message.fbs) and Type union tags (Schema.fbs) used here.
private enum Tag {
    static let schema: UInt8 = 1, dictionaryBatch: UInt8 = 2, recordBatch: UInt8 = 3
    static let int: UInt8 = 2, utf8: UInt8 = 5, list: UInt8 = 12, largeUtf8: UInt8 = 20, largeList: UInt8 = 21
    static let typeNames = ["NONE", "Null", "Int", "FloatingPoint", "Binary", "Utf8", "Bool", "Decimal", "Date", "Time",
                            "Timestamp", "Interval", "List", "Struct", "Union", "FixedSizeBinary", "FixedSizeList", "Map",
                            "Duration", "LargeBinary", "LargeUtf8", "LargeList", "RunEndEncoded", "BinaryView",
                            "Utf8View", "ListView", "LargeListView"]
    static func typeName(_ t: UInt8) -> String { Int(t) < typeNames.count ? typeNames[Int(t)] : "unknown (tag \(t))" }
    static let messageNames = ["NONE", "Schema", "DictionaryBatch", "RecordBatch", "Tensor", "SparseTensor"]
    static func messageName(_ t: UInt8) -> String { Int(t) < messageNames.count ? messageNames[Int(t)] : "unknown (header tag \(t))" }
}

private struct StreamParser {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var fields: [ArrowField] = []
    var strings: [[String?]] = []
    var integers: [[Int64?]] = []
    var lists: [[[String?]?]] = []

    init(bytes: UnsafeRawBufferPointer, path: String) { self.bytes = bytes; self.path = path }

    func fail(_ kind: ModelFileError.Kind = .malformed, at: Int, _ reason: String) -> ModelFileError {
        ModelFileError(kind, path: path, offset: at, reason)
    }

    func int32(at p: Int, _ what: String) throws -> Int32 {
        guard p >= 0, p <= bytes.count - 4 else {
            throw fail(.truncated, at: p, "\(what) needs 4 bytes but only \(max(0, bytes.count - p)) remain (file size \(bytes.count))")
        }
        return Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: p, as: Int32.self))
    }

    mutating func run() throws -> ArrowTable {
        var pos = 0
        var sawSchema = false
        var rows = 0, batches = 0
        var index = 0
        while pos < bytes.count {
            let messageStart = pos
            var length = try int32(at: pos, "message \(index) length")
            pos += 4
            if length == -1 {  // continuation marker (format ≥ 0.15), then the real length
                length = try int32(at: pos, "message \(index) length after the continuation marker")
                pos += 4
            }
            if length == 0 { break }  // end-of-stream marker
            guard length > 0 else { throw fail(at: messageStart, "message \(index): metadata length \(length) is negative") }
            guard Int(length) <= bytes.count - pos else {
                throw fail(.truncated, at: messageStart, "message \(index): metadata of \(length) bytes but only \(bytes.count - pos) remain (file size \(bytes.count))")
            }
            let region = FlatRegion(bytes: bytes, start: pos, end: pos + Int(length), path: path)
            pos += Int(length)
            let message = try region.root("message \(index)")
            let version = try message.scalar(0, "version", default: Int16(0))
            // V4 (Arrow 0.8) fixed the layout read here; V5 (1.0) only added union changes.
            guard version == 3 || version == 4 else {
                throw fail(.unsupported, at: message.position, "message \(index): metadata version V\(Int(version) + 1) (only V4 and V5 are read)")
            }
            let headerType = try message.scalar(1, "header_type", default: UInt8(0))
            let bodyLength = try message.scalar(3, "bodyLength", default: Int64(0))
            guard bodyLength >= 0, bodyLength <= Int64(bytes.count - pos) else {
                throw fail(.truncated, at: messageStart, "message \(index): body of \(bodyLength) bytes but only \(bytes.count - pos) remain after its metadata (file size \(bytes.count))")
            }
            let body = pos..<pos + Int(bodyLength)
            pos += Int(bodyLength)
            guard let header = try message.table(2, "header") else {
                throw fail(at: message.position, "message \(index): no header")
            }
            switch headerType {
            case Tag.schema:
                guard !sawSchema else { throw fail(at: messageStart, "message \(index): a second Schema message") }
                try readSchema(header, message: index)
                sawSchema = true
            case Tag.recordBatch:
                guard sawSchema else { throw fail(at: messageStart, "message \(index): a RecordBatch before the Schema") }
                rows += try readRecordBatch(header, body: body, message: index)
                batches += 1
            case Tag.dictionaryBatch:
                throw fail(.unsupported, at: messageStart, "message \(index): DictionaryBatch (dictionary-encoded columns are not supported)")
            default:
                throw fail(.unsupported, at: messageStart, "message \(index): \(Tag.messageName(headerType)) message (a table stream holds Schema and RecordBatch messages)")
            }
            index += 1
        }
        guard sawSchema else { throw fail(.truncated, at: 0, "no Schema message (empty or not an Arrow IPC stream)") }
        var columns: [ArrowColumn] = []
        var s = 0, n = 0, l = 0
        for f in fields {
            switch f.type {
            case .utf8, .largeUtf8: columns.append(.strings(strings[s])); s += 1
            case .int32, .int64: columns.append(.integers(integers[n])); n += 1
            case .list, .largeList: columns.append(.stringLists(lists[l])); l += 1
            }
        }
        return ArrowTable(path: path, fields: fields, columns: columns, rowCount: rows, recordBatchCount: batches)
    }

    // MARK: Schema

    mutating func readSchema(_ schema: FlatTable, message: Int) throws {
        let endianness = try schema.scalar(0, "endianness", default: Int16(0))
        guard endianness == 0 else { throw fail(.unsupported, at: schema.position, "message \(message): big-endian schema (only little-endian is read)") }
        guard let list = try schema.vector(1, "fields", elementSize: 4) else {
            throw fail(at: schema.position, "message \(message): schema without fields")
        }
        for i in 0..<list.count {
            let field = try list.table(i)
            let f = try readField(field)
            fields.append(f)
            switch f.type {
            case .utf8, .largeUtf8: strings.append([])
            case .int32, .int64: integers.append([])
            case .list, .largeList: lists.append([])
            }
        }
    }

    func readField(_ field: FlatTable) throws -> ArrowField {
        let name = try field.string(0, "name") ?? ""
        let label = "column '\(printable(name))'"
        let nullable = try field.scalar(1, "nullable", default: UInt8(0)) != 0
        let typeTag = try field.scalar(2, "type_type", default: UInt8(0))
        if try field.has(4, "dictionary") {
            throw fail(.unsupported, at: field.position, "\(label): dictionary-encoded (not supported)")
        }
        func unsupported(_ what: String) -> ModelFileError {
            fail(.unsupported, at: field.position,
                 "\(label): type \(what) is not supported (this reader handles Utf8, LargeUtf8, Int32, Int64 and List<Utf8>)")
        }
        let type: ArrowType
        switch typeTag {
        case Tag.utf8: type = .utf8
        case Tag.largeUtf8: type = .largeUtf8
        case Tag.int:
            guard let t = try field.table(3, "type") else { throw fail(at: field.position, "\(label): Int type without its table") }
            let bits = try t.scalar(0, "bitWidth", default: Int32(0))
            let signed = try t.scalar(1, "is_signed", default: UInt8(0)) != 0
            switch (bits, signed) {
            case (32, true): type = .int32
            case (64, true): type = .int64
            default: throw unsupported("\(signed ? "Int" : "UInt")\(bits)")
            }
        case Tag.list, Tag.largeList:
            guard let children = try field.vector(5, "children", elementSize: 4), children.count == 1 else {
                throw fail(at: field.position, "\(label): \(Tag.typeName(typeTag)) needs exactly one child field")
            }
            // Only strings are read as list elements, so the child is checked here rather than parsed as a field:
            // no recursion, whatever nesting a file claims.
            let child = try children.table(0)
            if try child.has(4, "dictionary") {
                throw fail(.unsupported, at: child.position, "\(label): dictionary-encoded list elements (not supported)")
            }
            let elementTag = try child.scalar(2, "type_type", default: UInt8(0))
            let element: ArrowType
            switch elementTag {
            case Tag.utf8: element = .utf8
            case Tag.largeUtf8: element = .largeUtf8
            default: throw unsupported("\(Tag.typeName(typeTag))<\(Tag.typeName(elementTag))>")
            }
            type = typeTag == Tag.list ? .list(element: element) : .largeList(element: element)
        default:
            throw unsupported(Tag.typeName(typeTag))
        }
        return ArrowField(name: name, type: type, nullable: nullable, schemaOffset: field.position)
    }

    /// A name read from the file, control characters escaped, so an error stays on one line.
    func printable(_ s: String) -> String {
        s.unicodeScalars.map { $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }

    // MARK: Record batches

    /// Walks a record batch's field nodes and buffers in schema pre-order (the IPC layout), checking each.
    struct BatchCursor {
        let nodes: FlatVector
        let buffers: FlatVector
        let body: Range<Int>
        var nextNode = 0
        var nextBuffer = 0
    }

    mutating func readRecordBatch(_ batch: FlatTable, body: Range<Int>, message: Int) throws -> Int {
        if try batch.has(3, "compression") {
            throw fail(.unsupported, at: batch.position, "message \(message): compressed record batch bodies are not supported (write the file uncompressed)")
        }
        let length = try batch.scalar(0, "length", default: Int64(0))
        guard let nodes = try batch.vector(1, "nodes", elementSize: 16),
              let buffers = try batch.vector(2, "buffers", elementSize: 16) else {
            throw fail(at: batch.position, "message \(message): record batch without nodes or buffers")
        }
        guard length >= 0, length <= Int64(bytes.count) else {
            throw fail(at: batch.position, "message \(message): record batch length \(length) is impossible in a \(bytes.count)-byte file")
        }
        var cursor = BatchCursor(nodes: nodes, buffers: buffers, body: body)
        var s = 0, n = 0, l = 0
        for f in fields {
            let columnLabel = "message \(message), column '\(printable(f.name))'"
            let node = try takeNode(&cursor, columnLabel)
            guard node.length == Int(length) else {
                throw fail(at: nodes.position(cursor.nextNode - 1), "\(columnLabel): \(node.length) values in a record batch of \(length) rows")
            }
            switch f.type {
            case .utf8, .largeUtf8:
                strings[s] += try readStrings(&cursor, node: node, wide: f.type == .largeUtf8, columnLabel); s += 1
            case .int32, .int64:
                integers[n] += try readIntegers(&cursor, node: node, width: f.type == .int64 ? 8 : 4, columnLabel); n += 1
            case let .list(element), let .largeList(element):
                let wide = { if case .largeList = f.type { return true } else { return false } }()
                let validity = try takeValidity(&cursor, node: node, columnLabel)
                let offsets = try takeBuffer(&cursor, "\(columnLabel) (list offsets)")
                let elementNode = try takeNode(&cursor, "\(columnLabel) (list elements)")
                let items = try readStrings(&cursor, node: elementNode, wide: element == .largeUtf8, "\(columnLabel) (list elements)")
                let bounds = try readOffsets(offsets, count: node.length, wide: wide, limit: items.count, "\(columnLabel) (list offsets)")
                var out: [[String?]?] = []
                out.reserveCapacity(node.length)
                for i in 0..<node.length {
                    out.append(isValid(validity, i) ? Array(items[bounds[i]..<bounds[i + 1]]) : nil)
                }
                lists[l] += out; l += 1
            }
        }
        guard cursor.nextNode == nodes.count, cursor.nextBuffer == buffers.count else {
            throw fail(at: batch.position, "message \(message): record batch has \(nodes.count) field nodes and \(buffers.count) buffers, the schema uses \(cursor.nextNode) and \(cursor.nextBuffer)")
        }
        return Int(length)
    }

    struct Node { var length: Int; var nullCount: Int }

    func takeNode(_ c: inout BatchCursor, _ what: String) throws -> Node {
        guard c.nextNode < c.nodes.count else {
            throw fail(at: c.nodes.start, "\(what): the record batch lists only \(c.nodes.count) field nodes")
        }
        let i = c.nextNode
        c.nextNode += 1
        let length = try c.nodes.int64(i, field: 0), nulls = try c.nodes.int64(i, field: 1)
        // Every value of the types read here takes at least 4 body bytes (an offset or the value itself), so a
        // longer node cannot be genuine; refusing it early keeps any later allocation bounded by the file size.
        guard length >= 0, length <= Int64(c.body.count) else {
            throw fail(at: c.nodes.position(i), "\(what): field node length \(length) is impossible for a body of \(c.body.count) bytes")
        }
        guard nulls >= 0, nulls <= length else {
            throw fail(at: c.nodes.position(i), "\(what): null count \(nulls) outside 0...\(length)")
        }
        return Node(length: Int(length), nullCount: Int(nulls))
    }

    /// The next buffer as a file range, checked to lie inside the message body.
    func takeBuffer(_ c: inout BatchCursor, _ what: String) throws -> Range<Int> {
        guard c.nextBuffer < c.buffers.count else {
            throw fail(at: c.buffers.start, "\(what): the record batch lists only \(c.buffers.count) buffers")
        }
        let i = c.nextBuffer
        c.nextBuffer += 1
        let offset = try c.buffers.int64(i, field: 0), length = try c.buffers.int64(i, field: 1)
        let size = Int64(c.body.count)
        guard offset >= 0, length >= 0, offset <= size, length <= size - offset else {
            throw fail(.truncated, at: c.buffers.position(i),
                       "\(what): buffer at body offset \(offset) of \(length) bytes runs outside the \(size)-byte body")
        }
        return c.body.lowerBound + Int(offset)..<c.body.lowerBound + Int(offset + length)
    }

    /// The validity bitmap, or nil when every value is valid (writers may then leave the buffer empty).
    func takeValidity(_ c: inout BatchCursor, node: Node, _ what: String) throws -> Range<Int>? {
        let buffer = try takeBuffer(&c, "\(what) (validity)")
        if node.nullCount == 0 { return nil }
        let needed = (node.length + 7) / 8
        guard buffer.count >= needed else {
            throw fail(.truncated, at: buffer.lowerBound, "\(what) (validity): \(node.nullCount) nulls but the bitmap has \(buffer.count) bytes for \(node.length) values (needs \(needed))")
        }
        var nulls = 0
        for i in 0..<node.length where !isValid(buffer, i) { nulls += 1 }
        guard nulls == node.nullCount else {
            throw fail(at: buffer.lowerBound, "\(what) (validity): the bitmap marks \(nulls) nulls, the field node says \(node.nullCount)")
        }
        return buffer
    }

    func isValid(_ bitmap: Range<Int>?, _ i: Int) -> Bool {
        guard let bitmap else { return true }
        return (bytes[bitmap.lowerBound + (i >> 3)] >> UInt8(i & 7)) & 1 == 1
    }

    /// `count + 1` offsets (int32, or int64 when `wide`), non-decreasing, from 0... up to at most `limit`.
    func readOffsets(_ buffer: Range<Int>, count: Int, wide: Bool, limit: Int, _ what: String) throws -> [Int] {
        if count == 0 { return [0] }  // an empty array may omit its offsets
        let width = wide ? 8 : 4
        guard buffer.count / width >= count + 1 else {
            throw fail(.truncated, at: buffer.lowerBound, "\(what): \(count + 1) offsets need \((count + 1) * width) bytes, the buffer has \(buffer.count)")
        }
        var out = [Int](repeating: 0, count: count + 1)
        for i in 0...count {
            let p = buffer.lowerBound + i * width
            let v = wide ? bytes.loadUnaligned(fromByteOffset: p, as: Int64.self).littleEndian
                         : Int64(bytes.loadUnaligned(fromByteOffset: p, as: Int32.self).littleEndian)
            guard v >= 0, v <= Int64(limit), i == 0 || v >= Int64(out[i - 1]) else {
                throw fail(at: p, "\(what): offset \(i) is \(v), outside \(i == 0 ? 0 : out[i - 1])...\(limit)")
            }
            out[i] = Int(v)
        }
        return out
    }

    func readStrings(_ c: inout BatchCursor, node: Node, wide: Bool, _ what: String) throws -> [String?] {
        let validity = try takeValidity(&c, node: node, what)
        let offsetsBuffer = try takeBuffer(&c, "\(what) (offsets)")
        let data = try takeBuffer(&c, "\(what) (data)")
        let offsets = try readOffsets(offsetsBuffer, count: node.length, wide: wide, limit: data.count, "\(what) (offsets)")
        var out: [String?] = []
        out.reserveCapacity(node.length)
        for i in 0..<node.length {
            guard isValid(validity, i) else { out.append(nil); continue }
            let lo = data.lowerBound + offsets[i], hi = data.lowerBound + offsets[i + 1]
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]), as: UTF8.self) else {
                throw fail(at: lo, "\(what): value \(i) is not valid UTF-8")
            }
            out.append(s)
        }
        return out
    }

    func readIntegers(_ c: inout BatchCursor, node: Node, width: Int, _ what: String) throws -> [Int64?] {
        let validity = try takeValidity(&c, node: node, what)
        let data = try takeBuffer(&c, "\(what) (values)")
        guard data.count / width >= node.length else {
            throw fail(.truncated, at: data.lowerBound, "\(what) (values): \(node.length) values need \(node.length * width) bytes, the buffer has \(data.count)")
        }
        var out: [Int64?] = []
        out.reserveCapacity(node.length)
        for i in 0..<node.length {
            guard isValid(validity, i) else { out.append(nil); continue }
            let p = data.lowerBound + i * width
            out.append(width == 8 ? bytes.loadUnaligned(fromByteOffset: p, as: Int64.self).littleEndian
                                  : Int64(bytes.loadUnaligned(fromByteOffset: p, as: Int32.self).littleEndian))
        }
        return out
    }
}
