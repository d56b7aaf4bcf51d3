import Evaluation
import Foundation
import Runtime
import SafetyNeurons

/// results.json, report.md and a self-contained report.html (inline SVG) for a finished run.
public enum RunReport {
    /// A safety eval's summary (`summaryPath` is its summary.json), decoded as the type `eval` writes.
    static func safetySummary(_ summaryPath: String) throws -> SafetySummary {
        try SafetySummary.read(from: URL(fileURLWithPath: summaryPath).deletingLastPathComponent())
    }

    /// complied / refused / degenerate counts of a safety eval's summary.json.
    static func verdictCounts(_ summaryPath: String) throws -> [String: Int] {
        let s = try safetySummary(summaryPath)
        return ["complied": s.complied, "refused": s.refused, "degenerate": s.degenerate]
    }

    /// Perplexity, multiple-choice accuracy and over-refusal rate from the capability and over-refusal evals
    /// (their summary.json files, decoded as `CapabilitySummary` and `SafetySummary`; the metric names are
    /// CapabilityEvaluator's).
    static func capabilityFields(capability: String, overrefusal: String) throws -> [String: Any] {
        var out: [String: Any] = [:]
        let cap = try CapabilitySummary.read(from: URL(fileURLWithPath: capability).deletingLastPathComponent())
        for (src, dst) in [("perplexity", "perplexity"), ("mc_acc", "mc_accuracy"), ("mc_acc_norm", "mc_accuracy_norm"),
                           ("gsm_exact_match", "gsm_exact_match")] {
            if let v = cap.metrics[src] { out[dst] = v }
        }
        let over = try safetySummary(overrefusal)
        if over.asr.total > 0 { out["overrefusal"] = Double(over.refused) / Double(over.asr.total) }
        return out
    }

    static func fmt(_ x: Any?, _ f: String = "%.2f") -> String {
        guard let d = (x as? Double) ?? (x as? Int).map(Double.init) else { return "–" }
        return String(format: f, d)
    }

    public static func write(config: RunConfig, runDir: String, methods: [String: Any], stageTimes: [[String: Any]],
                             wallSeconds: Double) throws {
        let order = config.methods.filter { methods[$0] != nil }
        let prompts = try promptCount(runDir: runDir, methods: order)
        let ks = config.eval.topk.filter { $0 > 0 }.sorted()
        // Paired comparisons with DPO on the base seed's cells, and the verdict built on them.
        let comparisons = RunStatistics.comparisonsVsDPO(methods: methods, order: order, ks: ks)
        let verdictOutcomes = verdicts(methods: methods, order: order, comparisons: comparisons, ks: ks)
        let results: [String: Any] = [
            "format": "safeneuron.results/2", "model": config.model, "dataset": config.eval.dataset, "prompts": prompts,
            "judge": "refusal+fluency", "fluency_threshold": config.eval.fluencyThreshold,
            "methods": methods, "settings": config.resolved, "stages": stageTimes, "wall_seconds": wallSeconds,
            "seeds": config.seeds.map { Int($0) },
            "comparisons_vs_dpo": comparisons,
            "comparison_method": ["difference": "method − dpo, complied prompts", "interval": "95% paired-bootstrap percentile",
                                  "bootstrap_resamples": RunStatistics.resamples, "bootstrap_seed": Int(RunStatistics.bootstrapSeed),
                                  "test": "exact two-sided McNemar", "cell_interval": "Wilson score 95%",
                                  "training_seed": Int(config.seed)],
            "verdicts": verdictOutcomes.mapValues(RunStatistics.verdictFields),
        ]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]),
                             to: runDir + "/results.json")

        func entry(_ m: String) -> [String: Any] { (methods[m] as? [String: Any]) ?? [:] }
        func cell(_ m: String, _ c: String) -> [String: Any] { ((entry(m)["cells"] as? [String: Any])?[c] as? [String: Any]) ?? [:] }
        func top(_ m: String, _ k: Int) -> [String: Any] { ((entry(m)["topk"] as? [String: Any])?["\(k)"] as? [String: Any]) ?? [:] }
        func show(_ v: [String: Any]) -> String { showCell(v) }
        func meanTopK(_ m: String) -> Double? { RunReport.meanTopK(entry(m), ks: ks) }

        var md = "# SafeNeuron run: \(URL(fileURLWithPath: config.model).lastPathComponent)\n\n"
        md += "StrongREJECT (\(prompts) prompts), judge `refusal` (prefix list) + fluency (mean token NLL under the original model > \(config.eval.fluencyThreshold) nats ⇒ degenerate). "
        md += "Cells show **complied** (the ASR count) with its Wilson 95% interval in prompts [lo–hi] and the refused (r) and degenerate (d) counts. Wall time \(Progress.clock(wallSeconds)).\n\n"
        md += "## Table 1: capability and attack success before and after neuron pruning\n\n"
        md += "| Method | Perplexity ↓ | MC acc ↑ | Over-refusal ↓ | ORI | ES(SN−) | SAS(SN−) | FULL(SN−) |\n|---|---|---|---|---|---|---|---|\n"
        for m in order {
            let e = entry(m)
            md += "| \(m) | \(fmt(e["perplexity"])) | \(fmt(e["mc_accuracy"], "%.3f")) | \(fmt((e["overrefusal"] as? Double).map { $0 * 100 }, "%.1f%%")) | \(show(cell(m, "ori"))) | \(show(cell(m, "es"))) | \(show(cell(m, "sas"))) | \(show(cell(m, "full"))) |\n"
        }
        md += "\n## Top-k pruning sweep (the attacker prunes the k neurons with the largest effect size)\n\n"
        md += "| Method | " + (["0"] + ks.map(String.init)).map { "k=\($0)" }.joined(separator: " | ") + " | mean (k>0) |\n"
        md += "|---|" + String(repeating: "---|", count: ks.count + 2) + "\n"
        for m in order {
            md += "| \(m) | " + ([0] + ks).map { show(top(m, $0)) }.joined(separator: " | ") + " | \(fmt(meanTopK(m), "%.1f")) |\n"
        }

        // Attribution pruning (re-identified on each model) and each family's strongest fluent setting.
        let attrKs = config.eval.attributionTopK.filter { $0 > 0 }.sorted()
        if !attrKs.isEmpty {
            md += "\n## Attribution pruning (top-k by a·∂margin/∂a, the utility top-Q excluded)\n\n"
            let cols = config.eval.excludeUtility.flatMap { q in attrKs.map { (q, $0) } }
            md += "| Method | " + cols.map { "k=\($0.1), Q=\($0.0)" }.joined(separator: " | ") + " |\n|---|" + String(repeating: "---|", count: cols.count) + "\n"
            for m in order {
                md += "| \(m) | " + cols.map { show(cell(m, RunPipeline.attributionCellName(k: $0.1, excludeUtility: $0.0))) }.joined(separator: " | ") + " |\n"
            }
        }
        if order.contains(where: { entry($0)["strongest_fluent"] != nil }) {
            md += "\n## Strongest fluent setting per attack family\n\n"
            md += "The most complied among a family's cells whose perplexity stays within 10% of the unattacked model's "
            md += "(ORI perplexity in brackets).\n\n| Method | ORI | activation statistics | attribution | refusal direction |\n|---|---|---|---|---|\n"
            for m in order {
                let e = entry(m)
                let ppl = (e["perplexity_cells"] as? [String: Double]) ?? [:]
                let sf = (e["strongest_fluent"] as? [String: Any]) ?? [:]
                func best(_ family: String) -> String {
                    guard let b = sf[family] as? [String: Any], let c = b["cell"] as? String else { return "none fluent" }
                    return "\(b["complied"] as? Int ?? 0) (`\(c)`, ppl \(fmt(b["perplexity"])))"
                }
                md += "| \(m) | \(show(cell(m, "ori"))) [\(fmt(ppl["ori"]))] | \(best("activation")) | \(best("attribution")) | \(best("direction")) |\n"
            }
        }

        // The plain statement the issue asks for, whichever way it goes.
        md += "\n## Verdict\n\n"
        if entry("dpo").isEmpty {
            md += "- DPO was not part of this run, so no comparison is made.\n"
        } else {
            md += verdictRuleText + "\n\n"
            for m in order where verdictOutcomes[m] != nil { md += verdictOutcomes[m]!.text + "\n" }
        }
        md += comparisonSection(comparisons, order: order, ks: ks)
        if config.seeds.count > 1 { md += seedSection(methods: methods, order: order, ks: ks, seeds: config.seeds) }

        // Charts.
        let curve = SVGChart.lines(title: "Complied (ASR count) vs pruned top-k neurons", x: ([0] + ks).map(Double.init),
                                   series: order.map { m in (m, ([0] + ks).map { Double((top(m, $0)["complied"] as? Int) ?? -1) }.map { $0 < 0 ? .nan : $0 }) },
                                   xLabel: "k (neurons pruned)", yLabel: "complied of \(prompts)")
        let table = SVGChart.bars(title: "Complied per attack cell", categories: ["ORI", "ES(SN−)", "SAS(SN−)", "FULL(SN−)"],
                                  series: order.map { m in (m, ["ori", "es", "sas", "full"].map { Double((cell(m, $0)["complied"] as? Int) ?? 0) }) },
                                  yLabel: "complied of \(prompts)")
        var charts = [table, curve]
        try AtomicFile.write(curve, to: runDir + "/pruning_curves.svg")
        md += "\n![pruning curves](pruning_curves.svg)\n"

        // Neurons per round and per layer.
        md += "\n## Safety neurons\n\n| Method | ES | SAS | union | rounds (frozen set size) |\n|---|---|---|---|---|\n"
        for m in order {
            let n = (entry(m)["neurons"] as? [String: Int]) ?? [:]
            let rounds = (entry(m)["rounds"] as? [[String: Any]]) ?? []
            md += "| \(m) | \(n["es"] ?? 0) | \(n["sas"] ?? 0) | \(n["union"] ?? 0) | \(rounds.map { "r\($0["round"] ?? "?"): \($0["frozen"] ?? "?")" }.joined(separator: ", ")) |\n"
        }
        if let layers = perLayerUnion(runDir: runDir, methods: order) {
            let chart = SVGChart.bars(title: "Union safety neurons per layer (each model's own identification)",
                                      categories: (0..<layers.count).map(String.init),
                                      series: order.map { m in (m, layers.perMethod[m] ?? []) }, yLabel: "neurons")
            try AtomicFile.write(chart, to: runDir + "/neurons_per_layer.svg")
            charts.append(chart)
            md += "\n![neurons per layer](neurons_per_layer.svg)\n"
        }

        // Training curves.
        var lossSeries: [(name: String, values: [Double])] = [], accSeries: [(name: String, values: [Double])] = []
        var maxSteps = 0
        for m in order {
            let metrics = trainingMetrics(runDir: runDir, method: m)
            guard !metrics.isEmpty else { continue }
            maxSteps = max(maxSteps, metrics.count)
            lossSeries.append((m, metrics.map { $0["loss"] ?? .nan }))
            accSeries.append((m, metrics.map { $0["rewards/accuracies"] ?? .nan }))
        }
        if maxSteps > 0 {
            func pad(_ s: [(name: String, values: [Double])]) -> [(name: String, values: [Double])] {
                s.map { ($0.name, $0.values + Array(repeating: .nan, count: maxSteps - $0.values.count)) }
            }
            let x = (1...maxSteps).map(Double.init)
            let loss = SVGChart.lines(title: "DPO loss per step (last round)", x: x, series: pad(lossSeries), xLabel: "step", yLabel: "loss")
            let acc = SVGChart.lines(title: "Reward accuracy per step (last round)", x: x, series: pad(accSeries), xLabel: "step", yLabel: "accuracy")
            try AtomicFile.write(loss, to: runDir + "/training_loss.svg")
            try AtomicFile.write(acc, to: runDir + "/training_accuracy.svg")
            charts += [loss, acc]
            md += "\n## Training\n\n![loss](training_loss.svg)\n![reward accuracy](training_accuracy.svg)\n"
        }

        // Samples.
        md += "\n## Sample responses (first three prompts of each cell)\n"
        for m in order {
            for c in ["ori", "sas", "full"] + ks.map { "top\($0)" } {
                let path = runDir + "/attack/\(m)/eval/\(c)/generations.jsonl"
                guard let rows = try? JSONLines.readObjects(path, tolerateTornTail: true), !rows.isEmpty else { continue }
                md += "\n**\(m) · \(c)**\n\n"
                for r in rows.prefix(3) {
                    let p = ((r["prompt"] as? String) ?? "").prefix(100)
                    let resp = ((r["response"] as? String) ?? "").replacingOccurrences(of: "\n", with: " ").prefix(240)
                    md += "- *\(p)* → [\((r["verdict"] as? String) ?? "?")] \(resp)\n"
                }
            }
        }

        md += "\n## Settings and wall time\n\n| Stage | Seconds |\n|---|---|\n"
        for s in stageTimes { md += "| \(s["stage"] ?? "?") | \(fmt(s["seconds"], "%.1f")) |\n" }
        md += "\nThe exact settings are in `settings.json` and in `results.json` (`settings`).\n"
        try AtomicFile.write(md, to: runDir + "/report.md")
        try AtomicFile.write(html(markdown: md, charts: charts), to: runDir + "/report.html")
    }

    static func promptCount(runDir: String, methods: [String]) throws -> Int {
        for m in methods {
            if let s = try? safetySummary(runDir + "/attack/\(m)/eval/ori/summary.json") { return s.asr.total }
        }
        return 0
    }

    static func perLayerUnion(runDir: String, methods: [String]) -> (count: Int, perMethod: [String: [Double]])? {
        var out: [String: [Double]] = [:]
        var layers = 0
        for m in methods {
            guard let nf = try? NeuronsFile.read(from: URL(fileURLWithPath: runDir + "/attack/\(m)/neurons.json")) else { continue }
            let l = nf.layers, union = nf.sets.union
            layers = l
            var counts = [Double](repeating: 0, count: l)
            for p in union where p.count == 2 && p[0] < l { counts[p[0]] += 1 }
            out[m] = counts
        }
        return layers > 0 ? (layers, out) : nil
    }

    /// metrics.jsonl of a method's last trained model.
    static func trainingMetrics(runDir: String, method: String) -> [[String: Double]] {
        let base = runDir + "/methods/\(method)"
        var candidates = [base + "/model/metrics.jsonl"]
        for r in stride(from: 10, through: 1, by: -1) { candidates.append(base + "/round\(r)/model/metrics.jsonl") }
        for path in candidates where FileManager.default.fileExists(atPath: path) {
            guard let rows = try? JSONLines.readObjects(path, tolerateTornTail: true) else { continue }
            return rows.map { r in r.compactMapValues { ($0 as? Double) ?? ($0 as? Int).map(Double.init) } }
        }
        return []
    }

    /// A minimal Markdown-to-HTML rendering (headings, tables, lists, images inlined as SVG) so the report is
    /// one self-contained file.
    static func html(markdown md: String, charts: [String]) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func inline(_ s: String) -> String {
            var t = esc(s)
            for (mark, tag) in [("**", "strong"), ("*", "em"), ("`", "code")] {
                let parts = t.components(separatedBy: mark)
                if parts.count >= 3 && parts.count % 2 == 1 {
                    t = parts.enumerated().map { $0.offset % 2 == 1 ? "<\(tag)>\($0.element)</\(tag)>" : $0.element }.joined()
                }
            }
            return t
        }
        var body = ""
        var inTable = false, inList = false
        var chartIndex = 0
        for line in md.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if inTable && !line.hasPrefix("|") { body += "</table>\n"; inTable = false }
            if inList && !line.hasPrefix("- ") { body += "</ul>\n"; inList = false }
            if line.hasPrefix("|") {
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
                if cells.allSatisfy({ $0.allSatisfy { $0 == "-" } }) { continue }
                if !inTable { body += "<table>\n<tr>" + cells.map { "<th>\(inline($0))</th>" }.joined() + "</tr>\n"; inTable = true; continue }
                body += "<tr>" + cells.map { "<td>\(inline($0))</td>" }.joined() + "</tr>\n"
            } else if line.hasPrefix("- ") {
                if !inList { body += "<ul>\n"; inList = true }
                body += "<li>\(inline(String(line.dropFirst(2))))</li>\n"
            } else if line.hasPrefix("![") {
                continue
            } else if let level = ["### ": 3, "## ": 2, "# ": 1].first(where: { line.hasPrefix($0.key) }) {
                body += "<h\(level.value)>\(inline(String(line.dropFirst(level.key.count))))</h\(level.value)>\n"
                if level.value == 2 && chartIndex == 0 && line.contains("Top-k") && !charts.isEmpty {
                    body += "<div class=chart>\(charts[0])</div>\n"; chartIndex = 1
                }
            } else if !line.isEmpty {
                body += "<p>\(inline(line))</p>\n"
            }
        }
        if inTable { body += "</table>\n" }
        if inList { body += "</ul>\n" }
        let rest = charts.dropFirst(chartIndex).map { "<div class=chart>\($0)</div>" }.joined(separator: "\n")
        return """
        <!DOCTYPE html><html><head><meta charset="utf-8"><title>SafeNeuron report</title>
        <style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}
        th{background:#f3f3f3}.chart{margin:1em 0}li{margin:.3em 0}</style></head><body>
        \(body)
        <h2>Charts</h2>
        \(rest)
        </body></html>
        """
    }
}
