import Foundation
import XCTest
import ModelFiles

/// The Arrow IPC stream reader on files pyarrow wrote (scripts/reference/make_arrow_fixtures.py), and on damaged
/// and hand-altered copies of them: every one must decode as pyarrow wrote it or throw a ModelFileError naming
/// the file, the byte offset and the field — never crash or read out of bounds.
final class ArrowStreamTests: XCTestCase {
    let fixture = "arrow/types.arrow"

    func expected() throws -> [String: Any] { try Fx.json("arrow/types.json") }
    func landmark(_ name: String) throws -> Int { try XCTUnwrap((expected()["landmarks"] as? [String: Any])?[name] as? Int, name) }

    /// JSON values as the reader's optionals (JSON null → nil).
    func strings(_ v: Any?) -> [String?] { (v as! [Any]).map { $0 as? String } }
    func integers(_ v: Any?) -> [Int64?] { (v as! [Any]).map { ($0 as? NSNumber)?.int64Value } }
    func lists(_ v: Any?) -> [[String?]?] { (v as! [Any]).map { ($0 as? [Any]).map { $0.map { $0 as? String } } } }

    func assertMatchesPyarrow(_ t: ArrowTable, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try expected()
        let columns = e["columns"] as! [String: Any]
        XCTAssertEqual(t.rowCount, 5, file: file, line: line)
        XCTAssertEqual(t.recordBatchCount, 3, file: file, line: line)
        XCTAssertEqual(t.fields.map(\.name), ["text", "large_text", "small", "big", "words", "large_words"], file: file, line: line)
        XCTAssertEqual(t.fields.map(\.type), [.utf8, .largeUtf8, .int32, .int64, .list(element: .utf8), .largeList(element: .largeUtf8)],
                       file: file, line: line)
        XCTAssertEqual(t.fields.map(\.nullable), [true, false, true, true, true, true], file: file, line: line)
        XCTAssertEqual(try t.strings("text"), strings(columns["text"]), file: file, line: line)
        XCTAssertEqual(try t.strings("large_text"), strings(columns["large_text"]), file: file, line: line)
        XCTAssertEqual(try t.integers("small"), integers(columns["small"]), file: file, line: line)
        XCTAssertEqual(try t.integers("big"), integers(columns["big"]), file: file, line: line)
        XCTAssertEqual(try t.stringLists("words"), lists(columns["words"]), file: file, line: line)
        XCTAssertEqual(try t.stringLists("large_words"), lists(columns["large_words"]), file: file, line: line)
    }

    func testDecodesEveryTypeAsPyarrowWroteIt() throws {
        let t = try ArrowStreamReader.read(path: Fx.path(fixture))
        try assertMatchesPyarrow(t)
        // Spot values, so the test does not rest on the JSON reading alone.
        XCTAssertEqual(try t.strings("text")[0], "héllo ✓")
        XCTAssertNil(try t.strings("text")[1])
        XCTAssertEqual(try t.integers("big")[2], 1 << 62)
        XCTAssertEqual(try t.stringLists("words")[3], [nil, "w"])
        XCTAssertNil(try t.stringLists("words")[1])
        XCTAssertEqual(try t.stringLists("large_words")[1], [])
    }

    func testLegacyFramingWithoutContinuationMarkerReadsTheSame() throws {
        try assertMatchesPyarrow(try ArrowStreamReader.read(path: Fx.path("arrow/legacy.arrow")))
    }

    func testMMLUSchemaAndTypedAccessorErrors() throws {
        let path = Fx.path("arrow/mmlu_like.arrow")
        let t = try ArrowStreamReader.read(path: path)
        XCTAssertEqual(t.fields.map(\.type), [.utf8, .utf8, .list(element: .utf8), .int64])
        XCTAssertEqual(try t.strings("question"), ["What is 1+1?"])
        XCTAssertEqual(try t.stringLists("choices"), [["1", "2", "3", "4"]])
        XCTAssertEqual(try t.integers("answer"), [1])
        XCTAssertThrowsError(try t.integers("question")) { e in
            let err = e as! ModelFileError
            XCTAssertEqual(err.kind, .malformed)
            XCTAssertTrue(err.description.hasPrefix("\(path): offset "), err.description)
            XCTAssertTrue(err.description.contains("column 'question' is Utf8, expected Int32 or Int64"), err.description)
        }
        XCTAssertThrowsError(try t.stringLists("answer")) { e in
            XCTAssertTrue(String(describing: e).contains("column 'answer' is Int64, expected List<Utf8>"), String(describing: e))
        }
        XCTAssertThrowsError(try t.strings("label")) { e in
            XCTAssertEqual((e as! ModelFileError).kind, .notFound)
            XCTAssertTrue(String(describing: e).contains("no column 'label'"), String(describing: e))
        }
    }

    func testRefusesWhatItDoesNotReadByName() {
        let cases: [(String, String)] = [
            ("compressed", "compressed record batch bodies are not supported"),
            ("dictionary", "column 'label': dictionary-encoded"),
            ("float", "column 'value': type FloatingPoint is not supported"),
            ("uint8", "column 'value': type UInt8 is not supported"),
            ("nested", "column 'value': type List<List> is not supported"),
        ]
        for (name, want) in cases {
            let path = Fx.path("arrow/\(name).arrow")
            XCTAssertThrowsError(try ArrowStreamReader.read(path: path), name) { e in
                guard let err = e as? ModelFileError else { return XCTFail("\(name): \(e)") }
                XCTAssertEqual(err.kind, .unsupported, name)
                XCTAssertNotNil(err.offset, name)
                XCTAssertTrue(err.description.hasPrefix(path + ": offset "), err.description)
                XCTAssertTrue(err.description.contains(want), "\(err.description) lacks \(want)")
            }
        }
        XCTAssertThrowsError(try ArrowStreamReader.read(path: "/nonexistent/x.arrow")) { e in
            XCTAssertEqual((e as? ModelFileError)?.kind, .io)
        }
    }

    /// Every prefix parses only when it ends on a message boundary (a stream may end without its end marker);
    /// any other cut throws a ModelFileError.
    func testTruncatedAtEveryLength() throws {
        let b = try Fx.bytes(fixture)
        let afterFirstBatch = try landmark("batch_message_end")
        var parsedLengths: [Int] = []
        for n in 0 ..< b.count {
            do {
                let t = try ArrowStreamReader.read(bytes: Array(b[0 ..< n]), label: "prefix")
                parsedLengths.append(n)
                XCTAssertTrue([0, 3, 5].contains(t.rowCount), "prefix \(n): \(t.rowCount) rows")
                if n == afterFirstBatch { XCTAssertEqual(t.rowCount, 3) }
            } catch let e as ModelFileError {
                XCTAssertTrue(e.description.hasPrefix("prefix: offset "), "prefix \(n): \(e)")
            } catch {
                XCTFail("prefix \(n): non-ModelFileError \(error)")
            }
        }
        // Boundaries: after the schema, after each of the three batches, and the whole file less its end marker's last bytes.
        XCTAssertTrue(parsedLengths.contains(try landmark("batch_message_start")))
        XCTAssertTrue(parsedLengths.contains(afterFirstBatch))
        XCTAssertTrue(parsedLengths.contains(b.count - 8), "the stream without its end-of-stream marker")
        XCTAssertLessThanOrEqual(parsedLengths.count, 8, "\(parsedLengths)")
    }

    func patched<T: FixedWidthInteger>(_ b: [UInt8], at p: Int, _ value: T) -> [UInt8] {
        var m = b
        withUnsafeBytes(of: value.littleEndian) { for (k, byte) in $0.enumerated() { m[p + k] = byte } }
        return m
    }

    /// Hand-altered offsets, lengths and counts: each error names the file, the byte offset where the bad value sits
    /// (or the message that holds it) and the field.
    func testHostileValuesNameFileOffsetAndField() throws {
        let b = try Fx.bytes(fixture)
        let batchStart = try landmark("batch_message_start")
        let nodes = try landmark("nodes_at"), buffers = try landmark("buffers_at")
        let offsets = try landmark("column0_offsets_at"), data = try landmark("column0_data_at")
        let cases: [(String, [UInt8], Int?, String)] = [
            ("metadata length", patched(b, at: try landmark("batch_metadata_length_at"), Int32.max), batchStart,
             "message 1: metadata of 2147483647 bytes but only"),
            ("negative metadata length", patched(b, at: try landmark("batch_metadata_length_at"), Int32(-5)), batchStart,
             "message 1: metadata length -5 is negative"),
            ("body length", patched(b, at: try landmark("batch_body_length_at"), Int64(1) << 40), batchStart,
             "message 1: body of 1099511627776 bytes but only"),
            ("root offset", patched(b, at: try landmark("batch_metadata_length_at") + 4, UInt32(0xFFFF_FF00)), nil,
             "message 1 vtable offset: 4-byte value lies outside the message metadata"),
            ("node count", patched(b, at: nodes - 4, UInt32(0xFFFF_FFF0)), nodes - 4,
             "nodes: 4294967280 elements of 16 bytes do not fit"),
            ("node length", patched(b, at: nodes, Int64(1) << 60), nodes,
             "column 'text': field node length 1152921504606846976 is impossible"),
            ("node null count", patched(b, at: nodes + 8, Int64(-1)), nodes, "column 'text': null count -1 outside 0...3"),
            ("null count disagreeing with the bitmap", patched(b, at: nodes + 8, Int64(3)), nil,
             "column 'text' (validity): the bitmap marks 1 nulls, the field node says 3"),
            ("buffer offset", patched(b, at: buffers + 16, Int64(1) << 50), buffers + 16,
             "column 'text' (offsets): buffer at body offset 1125899906842624 of"),
            ("buffer length", patched(b, at: buffers + 32 + 8, Int64.max), buffers + 32,
             "column 'text' (data): buffer at body offset"),
            ("string offset past the data", patched(b, at: offsets + 4, Int32.max), offsets + 4,
             "column 'text' (offsets): offset 1 is 2147483647, outside"),
            ("decreasing string offset", patched(b, at: offsets + 8, Int32(0)), offsets + 8,
             "column 'text' (offsets): offset 2 is 0, outside 10..."),
            ("invalid UTF-8", patched(b, at: data, UInt8(0xFF)), data, "column 'text': value 0 is not valid UTF-8"),
            ("type tag", patched(b, at: try landmark("first_field_type_tag_at"), UInt8(3)), nil,
             "column 'text': type FloatingPoint is not supported"),
            ("unknown type tag", patched(b, at: try landmark("first_field_type_tag_at"), UInt8(200)), nil,
             "column 'text': type unknown (tag 200) is not supported"),
        ]
        for (name, bytes, offset, want) in cases {
            XCTAssertThrowsError(try ArrowStreamReader.read(bytes: bytes, label: "hostile.arrow"), name) { e in
                guard let err = e as? ModelFileError else { return XCTFail("\(name): \(e)") }
                XCTAssertTrue(err.description.hasPrefix("hostile.arrow: offset "), "\(name): \(err.description)")
                if let offset { XCTAssertEqual(err.offset, offset, "\(name): \(err.description)") }
                XCTAssertTrue(err.description.contains(want), "\(name): \(err.description) lacks \(want)")
            }
        }
    }

    func testRandomBitFlipsParseOrThrowModelFileError() throws {
        let b = try Fx.bytes(fixture)
        var rng = SplitMix64(state: 7)
        var parsed = 0, rejected = 0
        for i in 0 ..< 3000 {
            var m = b
            for _ in 0 ..< 1 + i % 3 {
                // Most flips go to the metadata (schema and first batch), where the structure is.
                let limit = i % 4 == 0 ? m.count : min(m.count, 1100)
                let p = Int(rng.next() % UInt64(limit))
                if i % 5 == 0 { m[p] = 0xFF } else { m[p] ^= UInt8(1 << (rng.next() % 8)) }
            }
            do { _ = try ArrowStreamReader.read(bytes: m, label: "flipped"); parsed += 1 } catch is ModelFileError { rejected += 1 } catch {
                XCTFail("mutation \(i): non-ModelFileError \(error)")
            }
        }
        XCTAssertGreaterThan(rejected, 500)
        XCTAssertGreaterThan(parsed, 0)
    }
}
