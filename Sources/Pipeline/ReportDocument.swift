import Evaluation
import Foundation
import Mustache
import Runtime

/// A run report as structure — headings, paragraphs, tables, lists, charts — rendered two ways from the same
/// blocks: Markdown (report.md) by `markdown`, and HTML (report.html) through the Mustache template
/// `templates/report.html.mustache`. Text may hold the inline marks **bold**, *emphasis* and `code`.
public struct ReportDocument {
    public enum Block {
        case heading(level: Int, text: String)
        case paragraph(String)
        case table(header: [String], rows: [[String]])
        case list([String])
        /// An inline SVG chart; Markdown links the file `file` written beside report.md.
        case chart(svg: String, file: String, alt: String)
    }

    public var title: String
    public private(set) var blocks: [Block] = []

    public init(title: String) { self.title = title }

    public mutating func heading(_ text: String, level: Int = 2) { blocks.append(.heading(level: level, text: text)) }
    public mutating func paragraph(_ text: String) { blocks.append(.paragraph(text)) }
    public mutating func table(_ header: [String], _ rows: [[String]]) { blocks.append(.table(header: header, rows: rows)) }
    public mutating func list(_ items: [String]) { if !items.isEmpty { blocks.append(.list(items)) } }
    public mutating func chart(_ svg: String, file: String, alt: String) { blocks.append(.chart(svg: svg, file: file, alt: alt)) }
    public mutating func append(_ other: ReportDocument) { blocks += other.blocks }

    // MARK: Markdown

    public var markdown: String {
        var md = "# \(title)\n"
        for b in blocks {
            md += "\n"
            switch b {
            case let .heading(level, text): md += String(repeating: "#", count: level) + " \(text)\n"
            case let .paragraph(text): md += text + "\n"
            case let .table(header, rows):
                func row(_ cells: [String]) -> String { "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
                md += row(header) + "|" + String(repeating: "---|", count: header.count) + "\n" + rows.map(row).joined()
            case let .list(items): md += items.map { "- \($0)\n" }.joined()
            case let .chart(_, file, alt): md += "![\(alt)](\(file))\n"
            }
        }
        return md
    }

    // MARK: HTML

    /// The Mustache view: `title` and `blocks`, each block a map with one of the flags `heading`, `paragraph`,
    /// `table`, `list`, `chart` and its fields (already-escaped HTML, rendered with triple braces).
    public var view: [String: Any] {
        let blocks: [[String: Any]] = self.blocks.map { b in
            switch b {
            case let .heading(level, text): return ["heading": true, "h2": level <= 2, "h3": level >= 3, "html": Self.inline(text)]
            case let .paragraph(text): return ["paragraph": true, "html": Self.inline(text)]
            case let .table(header, rows):
                return ["table": true, "header": header.map { ["html": Self.inline($0)] },
                        "rows": rows.map { ["cells": $0.map { ["html": Self.inline($0)] }] }]
            case let .list(items): return ["list": true, "items": items.map { ["html": Self.inline($0)] }]
            case let .chart(svg, _, alt): return ["chart": true, "svg": svg, "alt": alt]
            }
        }
        return ["title": title, "blocks": blocks]
    }

    public static var templatePath: String { DataPaths.root.appendingPathComponent("templates/report.html.mustache").path }

    public func html(templatePath: String = ReportDocument.templatePath) throws -> String {
        guard let text = FileManager.default.contents(atPath: templatePath).flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw RuntimeError.missingFile(path: templatePath)
        }
        let template: MustacheTemplate
        do { template = try MustacheTemplate(string: text) } catch {
            throw RuntimeError.badFile(path: templatePath, reason: "not a valid Mustache template (\(error))")
        }
        return template.render(view)
    }

    /// The report's one HTML escaper is the SVG charts' (which also drops the control characters XML forbids).
    static func escape(_ s: String) -> String { SVGChart.escape(s) }

    /// Escaped text with the inline marks as HTML: **b** → <strong>, `c` → <code>, *e* → <em>. A mark is
    /// converted only when it pairs up within the text; code spans are taken first, so marks inside them stay literal.
    static func inline(_ s: String) -> String {
        let codeParts = s.components(separatedBy: "`")
        guard codeParts.count % 2 == 1 else { return emphasis(escape(s)) }
        return codeParts.enumerated().map { i, part in i % 2 == 1 ? "<code>\(escape(part))</code>" : emphasis(escape(part)) }.joined()
    }

    private static func emphasis(_ t: String) -> String {
        var t = t
        for (mark, tag) in [("**", "strong"), ("*", "em")] {
            let parts = t.components(separatedBy: mark)
            if parts.count >= 3 && parts.count % 2 == 1 {
                t = parts.enumerated().map { $0.offset % 2 == 1 ? "<\(tag)>\($0.element)</\(tag)>" : $0.element }.joined()
            }
        }
        return t
    }
}
