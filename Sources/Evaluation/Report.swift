import Foundation

/// One table cell: display text plus the numbers behind it (kept for report.json).
public struct ReportCell: Codable, Equatable, Sendable {
    public var text: String
    public var count: Int?
    public var total: Int?
    public var percent: Double?
    public var value: Double?

    public init(text: String, count: Int? = nil, total: Int? = nil, percent: Double? = nil, value: Double? = nil) {
        self.text = text; self.count = count; self.total = total; self.percent = percent; self.value = value
    }

    /// "count/total (p%)".
    public static func rate(_ r: RateCount) -> ReportCell {
        ReportCell(text: "\(r.count)/\(r.total) (\(String(format: "%.1f", r.percent))%)", count: r.count, total: r.total, percent: r.percent)
    }
}

/// A methods × columns table rendered as Markdown or HTML.
public struct ReportTable: Codable, Equatable, Sendable {
    public struct Row: Codable, Equatable, Sendable {
        public var label: String
        public var cells: [ReportCell?]
        public init(label: String, cells: [ReportCell?]) { self.label = label; self.cells = cells }
    }

    public var title: String
    public var rowHeader: String
    public var columns: [String]
    public var rows: [Row]
    public var notes: [String]

    public init(title: String, rowHeader: String = "Method", columns: [String], rows: [Row], notes: [String] = []) {
        self.title = title; self.rowHeader = rowHeader; self.columns = columns; self.rows = rows; self.notes = notes
    }

    static func mdEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\n", with: " ")
    }

    public func markdown() -> String {
        var s = "### \(ReportTable.mdEscape(title))\n\n"
        s += "| " + ([rowHeader] + columns).map(ReportTable.mdEscape).joined(separator: " | ") + " |\n"
        s += "|" + Array(repeating: "---|", count: columns.count + 1).joined() + "\n"
        for r in rows {
            let cells = columns.indices.map { i in i < r.cells.count ? (r.cells[i]?.text ?? "—") : "—" }
            s += "| " + ([r.label] + cells).map(ReportTable.mdEscape).joined(separator: " | ") + " |\n"
        }
        if !notes.isEmpty { s += "\n" + notes.map { "- \(ReportTable.mdEscape($0))" }.joined(separator: "\n") + "\n" }
        return s
    }

    /// The `<table>` element alone (for embedding).
    public func htmlTable() -> String {
        let e = SVGChart.escape
        var s = "<table>\n<caption>\(e(title))</caption>\n<thead><tr><th>\(e(rowHeader))</th>"
        s += columns.map { "<th>\(e($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for r in rows {
            s += "<tr><th scope=\"row\">\(e(r.label))</th>"
            for i in columns.indices {
                let c = i < r.cells.count ? r.cells[i] : nil
                s += "<td>\(e(c?.text ?? "—"))</td>"
            }
            s += "</tr>\n"
        }
        s += "</tbody>\n</table>\n"
        if !notes.isEmpty { s += "<ul class=\"notes\">" + notes.map { "<li>\(e($0))</li>" }.joined() + "</ul>\n" }
        return s
    }

    /// A self-contained HTML page (inline CSS, inline SVG charts, no external assets).
    public func html(pageTitle: String? = nil, charts: [String] = [], intro: String? = nil) -> String {
        let e = SVGChart.escape
        var s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>\(e(pageTitle ?? title))</title>\n"
        s += "<style>\nbody{font-family:Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\n"
        s += "table{border-collapse:collapse;margin:1em 0}caption{font-weight:bold;text-align:left;padding:.4em 0}\n"
        s += "th,td{border:1px solid #ccc;padding:.35em .7em;text-align:right}th[scope=row],thead th:first-child{text-align:left}\n"
        s += "thead th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}.chart{margin:1.5em 0}.notes{color:#555;font-size:.9em}\n"
        s += "</style>\n</head>\n<body>\n<h1>\(e(pageTitle ?? title))</h1>\n"
        if let intro { s += "<p>\(e(intro))</p>\n" }
        s += htmlTable()
        for c in charts { s += "<div class=\"chart\">\n\(c)</div>\n" }
        s += "</body>\n</html>\n"
        return s
    }
}

/// Builds the paper's Table 1 and charts from a set of summary.json folders.
public enum Report {
    /// Preferred column order; other attack conditions follow in order of first appearance.
    public static let capabilityColumn = "Capability"
    public static let overRefusalColumn = "ORI"
    public static let preferredConditions = ["none", "ES(SN−)", "SAS(SN−)", "FULL(SN−)"]

    public struct Loaded: Sendable {
        public var folder: URL
        public var summary: AnySummary
        public init(folder: URL, summary: AnySummary) { self.folder = folder; self.summary = summary }
    }

    /// Table 1: methods as rows; Capability, ORI and one ASR column per attack condition.
    /// Safety cells show complied count/total (%); ORI shows refused count/total (%) on the benign set.
    /// When several attack datasets are present the column name gets " · dataset". A later summary for the
    /// same cell replaces an earlier one and adds a note.
    public static func table1(_ summaries: [AnySummary], title: String = "Table 1: capability, over-refusal and attack success") -> ReportTable {
        var methods: [String] = []
        func noteMethod(_ m: String) { if !methods.contains(m) { methods.append(m) } }
        let attacks = summaries.compactMap { s -> SafetySummary? in
            if case .safety(let x) = s, x.role != SafetySummary.roleOverRefusal { return x }
            return nil
        }
        let datasets = Set(attacks.map(\.dataset))
        func attackColumn(_ s: SafetySummary) -> String {
            let base = s.condition == "none" ? "ASR (no attack)" : s.condition
            return datasets.count > 1 ? "\(base) · \(s.dataset)" : base
        }
        var attackCols: [String] = []
        let ranked = attacks.enumerated().sorted { a, b in
            let ra = preferredConditions.firstIndex(of: a.element.condition) ?? preferredConditions.count
            let rb = preferredConditions.firstIndex(of: b.element.condition) ?? preferredConditions.count
            return ra != rb ? ra < rb : a.offset < b.offset
        }
        for (_, s) in ranked where !attackCols.contains(attackColumn(s)) { attackCols.append(attackColumn(s)) }

        let columns = [capabilityColumn, overRefusalColumn] + attackCols
        var cells: [String: [Int: ReportCell]] = [:]
        var notes: [String] = []
        func put(_ method: String, _ col: Int, _ cell: ReportCell) {
            noteMethod(method)
            if cells[method]?[col] != nil { notes.append("\(method) / \(columns[col]): several summaries; the last one is shown") }
            cells[method, default: [:]][col] = cell
        }
        for s in summaries {
            switch s {
            case .capability(let c):
                guard let v = c.metrics[c.primaryMetric] else { noteMethod(c.method); continue }
                let isFraction = v >= 0 && v <= 1 && !c.primaryMetric.lowercased().contains("perplexity")
                let text = isFraction ? "\(c.primaryMetric) \(String(format: "%.1f", v * 100))%" : "\(c.primaryMetric) \(String(format: "%.2f", v))"
                put(c.method, 0, ReportCell(text: text, percent: isFraction ? v * 100 : nil, value: v))
            case .safety(let x) where x.role == SafetySummary.roleOverRefusal:
                put(x.method, 1, .rate(x.refusalRate))
            case .safety(let x):
                if let i = columns.firstIndex(of: attackColumn(x)) { put(x.method, i, .rate(x.asr.rate)) }
            }
        }
        let rows = methods.map { m in ReportTable.Row(label: m, cells: columns.indices.map { cells[m]?[$0] }) }
        var judges: [String] = []
        for s in summaries { if case .safety(let x) = s, !judges.contains(x.judge) { judges.append(x.judge) } }
        let judgeText = judges.isEmpty ? "" : "; judge: " + judges.joined(separator: ", ")
        var allNotes = ["Attack columns: complied / total (ASR %)\(judgeText). ORI: refused / total on benign prompts."]
        allNotes += notes
        return ReportTable(title: title, columns: columns, rows: rows, notes: allNotes)
    }

    /// Charts for the report: ASR by condition, ASR by prompt category per condition, and ASR against the
    /// number of pruned neurons when some method was run at two or more prune-set sizes.
    public static func charts(_ summaries: [AnySummary], table: ReportTable) -> [String] {
        var out: [String] = []
        let attackCols = table.columns.filter { $0 != capabilityColumn && $0 != overRefusalColumn }
        if !attackCols.isEmpty {
            let ci = attackCols.compactMap { table.columns.firstIndex(of: $0) }
            let series = table.rows.map { r in (name: r.label, values: ci.map { i in i < r.cells.count ? (r.cells[i]?.percent ?? .nan) : .nan }) }
            out.append(SVGChart.bars(title: "Attack success rate by condition", categories: attackCols, series: series, yLabel: "ASR (%)", yMax: 100))
        }
        let attacks = summaries.compactMap { s -> SafetySummary? in
            if case .safety(let x) = s, x.role != SafetySummary.roleOverRefusal { return x }
            return nil
        }
        var conditions: [String] = []
        for a in attacks where !conditions.contains(a.condition) { conditions.append(a.condition) }
        for cond in conditions {
            let group = attacks.filter { $0.condition == cond }
            var cats: [String] = []
            for g in group { for c in g.asr.byCategory.keys.sorted() where !cats.contains(c) { cats.append(c) } }
            guard cats.count > 1 else { continue }
            let series = group.map { g in (name: "\(g.method) · \(g.dataset)", values: cats.map { g.asr.byCategory[$0]?.percent ?? .nan }) }
            out.append(SVGChart.bars(title: "ASR by category — \(cond == "none" ? "no attack" : cond)", categories: cats, series: series, yLabel: "ASR (%)", yMax: 100))
        }
        var byMethod: [String: [(Double, Double)]] = [:]
        var methodOrder: [String] = []
        for a in attacks {
            if !methodOrder.contains(a.method) { methodOrder.append(a.method) }
            byMethod[a.method, default: []].append((Double(a.pruneSet?.neuronCount ?? 0), a.asr.percent))
        }
        if byMethod.values.contains(where: { Set($0.map(\.0)).count >= 2 }) {
            let xs = Array(Set(byMethod.values.flatMap { $0.map(\.0) })).sorted()
            let series = methodOrder.map { m in
                (name: m, values: xs.map { x in byMethod[m]?.last(where: { $0.0 == x })?.1 ?? .nan })
            }
            out.append(SVGChart.lines(title: "ASR vs. pruned neurons", x: xs, series: series, xLabel: "pruned neurons", yLabel: "ASR (%)"))
        }
        return out
    }

    public struct Output: Sendable {
        public var markdown: URL
        public var html: URL
        public var json: URL
        public var table: ReportTable
    }

    private struct JSONReport: Encodable {
        var generatedAt: String
        var table: ReportTable
        var summaries: [Entry]
        struct Entry: Encodable {
            var folder: String
            var safety: SafetySummary?
            var capability: CapabilitySummary?
        }
        enum CodingKeys: String, CodingKey { case generatedAt = "generated_at", table, summaries }
    }

    /// Reads `summary.json` from each folder and writes report.md, report.html and report.json into `output`.
    public static func build(folders: [URL], output: URL, title: String = "SafeNeuron evaluation report") throws -> Output {
        guard !folders.isEmpty else { throw EvaluationError.invalidArgument(reason: "no summary folders given") }
        let loaded = try folders.map { Loaded(folder: $0, summary: try AnySummary.read(folder: $0)) }
        let summaries = loaded.map(\.summary)
        let table = table1(summaries)
        let charts = charts(summaries, table: table)
        let stamp = ISO8601DateFormatter().string(from: Date())

        var md = "# \(title)\n\nGenerated \(stamp) from \(folders.count) summaries.\n\n" + table.markdown()
        md += "\n## Runs\n\n| Folder | Kind | Method | Dataset | Condition | Judge | Wall (s) |\n|---|---|---|---|---|---|---|\n"
        for l in loaded {
            switch l.summary {
            case .safety(let s):
                md += "| " + [l.folder.lastPathComponent, s.role, s.method, s.dataset, s.condition, s.judge,
                              String(format: "%.1f", s.wallSeconds)].map(ReportTable.mdEscape).joined(separator: " | ") + " |\n"
            case .capability(let c):
                md += "| " + [l.folder.lastPathComponent, "capability", c.method, "—", c.pruneSet?.name ?? "none", "—",
                              String(format: "%.1f", c.wallSeconds)].map(ReportTable.mdEscape).joined(separator: " | ") + " |\n"
            }
        }
        md += "\nCharts are in report.html.\n"
        let html = table.html(pageTitle: title, charts: charts, intro: "Generated \(stamp) from \(folders.count) summaries.")

        let report = JSONReport(generatedAt: stamp, table: table, summaries: loaded.map { l in
            switch l.summary {
            case .safety(let s): return .init(folder: l.folder.path, safety: s, capability: nil)
            case .capability(let c): return .init(folder: l.folder.path, safety: nil, capability: c)
            }
        })
        let mdURL = output.appendingPathComponent("report.md")
        let htmlURL = output.appendingPathComponent("report.html")
        let jsonURL = output.appendingPathComponent("report.json")
        try FileIO.writeAtomically(md, to: mdURL)
        try FileIO.writeAtomically(html, to: htmlURL)
        try FileIO.writeAtomically(try encodeJSON(report, path: jsonURL.path), to: jsonURL)
        return Output(markdown: mdURL, html: htmlURL, json: jsonURL, table: table)
    }
}

extension Report {
    /// Folders holding a summary.json: each given folder itself, else its immediate subfolders (sorted by
    /// name) that have one. A folder with neither is an error.
    public static func expandResultFolders(_ folders: [URL]) throws -> [URL] {
        let fm = FileManager.default
        var out: [URL] = []
        for f in folders {
            if fm.fileExists(atPath: f.appendingPathComponent(SafetySummary.fileName).path) { out.append(f); continue }
            let subs = ((try? fm.contentsOfDirectory(atPath: f.path)) ?? []).sorted()
                .map { f.appendingPathComponent($0, isDirectory: true) }
                .filter { fm.fileExists(atPath: $0.appendingPathComponent(SafetySummary.fileName).path) }
            guard !subs.isEmpty else { throw EvaluationError.io(path: f.path, reason: "no summary.json in the folder or its subfolders") }
            out += subs
        }
        return out
    }
}
