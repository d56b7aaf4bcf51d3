import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Evaluation

final class ReportTests: XCTestCase {
    /// Parses with Foundation's XMLParser and returns element names, or the parser error.
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var text = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            elements.append(name)
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
    }

    func parseXML(_ s: String, file: StaticString = #filePath, line: UInt = #line) -> Collector {
        let p = XMLParser(data: Data(s.utf8))
        let c = Collector()
        p.delegate = c
        XCTAssertTrue(p.parse(), "XML parse failed: \(String(describing: p.parserError))", file: file, line: line)
        return c
    }

    func testXMLParserRejectsBrokenMarkup() {
        // Guards the parse checks below: an unescaped "<" must be rejected.
        let p = XMLParser(data: Data("<svg><text>a < b</text></svg>".utf8))
        XCTAssertFalse(p.parse())
    }

    func testBarsAreValidSVGWithNumbersLabelsAndEscaping() {
        let svg = SVGChart.bars(title: "ASR <by> \"method\" & 'set'", categories: ["ES(SN−)", "A&B", "<script>"],
                                series: [(name: "Base", values: [12.5, 40, 3]), (name: "Safe<Neuron>", values: [1, .nan, 77])],
                                yLabel: "ASR (%)", yMax: 100)
        let c = parseXML(svg)
        XCTAssertEqual(c.elements.first, "svg")
        XCTAssertEqual(c.elements.filter { $0 == "rect" }.count, 1 + 2 + 5) // background + 2 legend swatches + 5 finite bars
        XCTAssertTrue(c.text.contains("ASR <by> \"method\" & 'set'"))
        XCTAssertTrue(c.text.contains("<script>"))
        XCTAssertTrue(c.text.contains("Safe<Neuron>"))
        for num in ["12.5", "40", "77", "100", "ASR (%)"] { XCTAssertTrue(c.text.contains(num), num) }
        XCTAssertFalse(svg.contains("<script>"))
        XCTAssertTrue(svg.contains("&lt;script&gt;"))
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
    }

    func testLinesAreValidSVGWithAxes() {
        let svg = SVGChart.lines(title: "ASR vs pruned", x: [0, 100, 200, 400],
                                 series: [(name: "Base", values: [2, 30, 55, 80]), (name: "SN", values: [1, .nan, 4, 6])],
                                 xLabel: "neurons", yLabel: "ASR (%)")
        let c = parseXML(svg)
        XCTAssertEqual(c.elements.filter { $0 == "polyline" }.count, 2) // Base + the SN segment after the gap
        XCTAssertEqual(c.elements.filter { $0 == "circle" }.count, 7)
        for s in ["neurons", "ASR (%)", "400", "Base", "SN", "(200, 55)"] { XCTAssertTrue(c.text.contains(s), s) }
    }

    func testNiceTicksAndFormatting() {
        XCTAssertEqual(SVGChart.niceTicks(lo: 0, hi: 100), [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(SVGChart.niceTicks(lo: 0, hi: 0), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(SVGChart.niceTicks(lo: -3, hi: 12), [-5, 0, 5, 10, 15])
        XCTAssertEqual(SVGChart.niceTicks(lo: 0, hi: 7.3, target: 5).last, 8)
        XCTAssertEqual(SVGChart.format(2.5, step: 2.5), "2.5")
        XCTAssertEqual(SVGChart.format(20, step: 20), "20")
        XCTAssertEqual(SVGChart.format(0.25, step: 0.25), "0.25")
        XCTAssertEqual(SVGChart.format(-0.0001, step: 1), "0")
        XCTAssertEqual(SVGChart.escape("a\u{1}b<"), "ab&lt;")
    }

    func summaries() throws -> [AnySummary] {
        func recs(_ complied: Int, _ refused: Int, cat: String = "x") -> [GenerationRecord] {
            Array(repeating: GenerationRecord(prompt: "p", response: "r", category: cat, verdict: .complied, tokens: 1), count: complied)
                + Array(repeating: GenerationRecord(prompt: "p", response: "r", category: "y", verdict: .refused, tokens: 1), count: refused)
        }
        return [
            .capability(CapabilitySummary(method: "Base", metrics: ["mc_acc": 0.375], primaryMetric: "mc_acc", wallSeconds: 1)),
            .safety(try SafetySummary(method: "Base", dataset: "strongreject", judge: "j", records: recs(10, 303), wallSeconds: 1)),
            .safety(try SafetySummary(method: "Base", dataset: "strongreject", judge: "j", records: recs(200, 113),
                                      pruneSet: PruneSetInfo(name: "FULL(SN−)", neuronCount: 500), wallSeconds: 1)),
            .safety(try SafetySummary(method: "Base", dataset: "strongreject", judge: "j", records: recs(120, 193),
                                      pruneSet: PruneSetInfo(name: "ES(SN−)", neuronCount: 200), wallSeconds: 1)),
            .safety(try SafetySummary(method: "SafeNeuron|v2", dataset: "strongreject", judge: "j", records: recs(15, 298),
                                      pruneSet: PruneSetInfo(name: "FULL(SN−)", neuronCount: 500), wallSeconds: 1)),
            .safety(try SafetySummary(method: "SafeNeuron|v2", role: SafetySummary.roleOverRefusal, dataset: "harmless", judge: "j",
                                      records: recs(140, 20), wallSeconds: 1)),
        ]
    }

    func testTable1Layout() throws {
        let t = Report.table1(try summaries())
        XCTAssertEqual(t.columns, ["Capability", "ORI", "ASR (no attack)", "ES(SN−)", "FULL(SN−)"])
        XCTAssertEqual(t.rows.map(\.label), ["Base", "SafeNeuron|v2"])
        XCTAssertEqual(t.rows[0].cells[0]?.text, "mc_acc 37.5%")
        XCTAssertEqual(t.rows[0].cells[2]?.text, "10/313 (3.2%)")
        XCTAssertEqual(t.rows[0].cells[3]?.text, "120/313 (38.3%)")
        XCTAssertEqual(t.rows[0].cells[4]?.text, "200/313 (63.9%)")
        XCTAssertNil(t.rows[0].cells[1])
        XCTAssertEqual(t.rows[1].cells[1]?.text, "20/160 (12.5%)")
        XCTAssertEqual(t.rows[1].cells[4]?.count, 15)
        let md = t.markdown()
        XCTAssertTrue(md.contains("| Method | Capability | ORI | ASR (no attack) | ES(SN−) | FULL(SN−) |"))
        XCTAssertTrue(md.contains("| SafeNeuron\\|v2 | — | 20/160 (12.5%) |"), md)
        let html = t.html(charts: [SVGChart.bars(title: "t", categories: ["a"], series: [(name: "s", values: [1])], yLabel: "y")])
        XCTAssertFalse(html.contains("http-equiv") || html.contains("<link") || html.contains("src="), "HTML must be self-contained")
        let c = parseXML(html.replacingOccurrences(of: "<!DOCTYPE html>\n", with: ""))
        XCTAssertTrue(c.elements.contains("table") && c.elements.contains("svg") && c.elements.contains("style"))
    }

    func testBuildWritesThreeFilesFromFolders() throws {
        let root = try TestPaths.tempDir()
        var folders: [URL] = []
        for (i, s) in try summaries().enumerated() {
            let f = root.appendingPathComponent("run\(i)")
            switch s {
            case .safety(let x): try x.write(to: f)
            case .capability(let x): try x.write(to: f)
            }
            folders.append(f)
        }
        let out = try Report.build(folders: folders, output: root.appendingPathComponent("report"))
        let md = try String(contentsOf: out.markdown, encoding: .utf8)
        let html = try String(contentsOf: out.html, encoding: .utf8)
        XCTAssertTrue(md.contains("200/313 (63.9%)"))
        XCTAssertTrue(html.contains("200/313 (63.9%)"))
        XCTAssertTrue(html.contains("SafeNeuron|v2"))
        // Bar chart by condition, by-category charts, and ASR vs pruned neurons for Base (0, 200, 500).
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "<svg ").count - 1, 3)
        XCTAssertTrue(html.contains("ASR vs. pruned neurons"))
        _ = parseXML(html.replacingOccurrences(of: "<!DOCTYPE html>\n", with: ""))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.json)) as? [String: Any])
        XCTAssertEqual((json["summaries"] as? [Any])?.count, 6)
        XCTAssertNotNil((json["table"] as? [String: Any])?["rows"])
        XCTAssertThrowsError(try Report.build(folders: [root.appendingPathComponent("absent")], output: root))
        XCTAssertThrowsError(try Report.build(folders: [], output: root))
    }
}
