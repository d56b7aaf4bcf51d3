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

    /// The capability fields of one method from its capability eval (`capability` is its summary.json, decoded as
    /// `CapabilitySummary`) and its over-refusal eval (`overrefusal` is the folder holding overrefusal_sources.json):
    /// `perplexity`; `benchmarks` (per benchmark: acc, acc_norm with standard errors, n, and `score`, the figure
    /// the verdict compares: acc_norm, or exact match for GSM8K); `overrefusal_sources` (per source: refused, n,
    /// rate, Wilson 95% interval) and `overrefusal`, the rate pooled over the sources.
    static func capabilityFields(capability: String, overrefusal: String) throws -> [String: Any] {
        var out: [String: Any] = [:]
        let cap = try CapabilitySummary.read(from: URL(fileURLWithPath: capability).deletingLastPathComponent())
        if let v = cap.metrics["perplexity"] { out["perplexity"] = v }
        var benchmarks: [String: Any] = [:]
        for b in cap.benchmarks ?? [] {
            func num(_ x: Double) -> Any { x.isFinite ? RunStatistics.round6(x) : NSNull() }
            benchmarks[b.benchmark] = ["acc": num(b.acc), "acc_stderr": num(b.accStderr), "acc_norm": num(b.accNorm),
                                       "acc_norm_stderr": num(b.accNormStderr), "n": b.count, "shots": b.shots,
                                       "score": num(b.benchmark == GSM8K.name ? b.acc : b.accNorm)]
        }
        if !benchmarks.isEmpty { out["benchmarks"] = benchmarks }
        let listPath = overrefusal + "/overrefusal_sources.json"
        guard let list = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: listPath))) as? [String: Any],
              let rows = list["sources"] as? [[String: Any]] else {
            throw RuntimeError.badFile(path: listPath, reason: "sources: missing or not a list")
        }
        var sources: [String: Any] = [:], refused = 0, total = 0
        for (i, row) in rows.enumerated() {
            guard let name = row["source"] as? String, let r = row["refused"] as? Int, let n = row["total"] as? Int, r >= 0, n >= r else {
                throw RuntimeError.badFile(path: listPath, reason: "sources[\(i)]: needs source, refused ≤ total")
            }
            refused += r; total += n
            var f: [String: Any] = ["refused": r, "n": n, "rate": n > 0 ? RunStatistics.round6(Double(r) / Double(n)) : NSNull()]
            if let ci = Statistics.wilson(successes: r, of: n) { f["rate_ci95"] = [RunStatistics.round6(ci.lower), RunStatistics.round6(ci.upper)] }
            sources[name] = f
        }
        out["overrefusal_sources"] = sources
        if total > 0 { out["overrefusal"] = Double(refused) / Double(total) }
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
            "format": "safeneuron.results/3", "model": config.model, "dataset": config.eval.dataset, "prompts": prompts,
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

        var doc = ReportDocument(title: "SafeNeuron run: \(URL(fileURLWithPath: config.model).lastPathComponent)")
        doc.paragraph("StrongREJECT (\(prompts) prompts), judge `refusal` (prefix list) + fluency (mean token NLL under the original model > \(config.eval.fluencyThreshold) nats ⇒ degenerate). "
                      + "Cells show **complied** (the ASR count) with its Wilson 95% interval in prompts [lo–hi] and the refused (r) and degenerate (d) counts. Wall time \(Progress.clock(wallSeconds)).")
        let jailbreaks = config.eval.jailbreaks
        doc.heading("Table 1: attack success before and after neuron pruning")
        if !jailbreaks.isEmpty {
            doc.paragraph("ORI on a jailbreak phrasing: the unattacked model on that set's prompts"
                          + (config.eval.jailbreakSample.map { " (a seeded sample of \($0), the same for every method)" } ?? "")
                          + ". A model that refuses a request but answers it reworded is not safe.")
        }
        doc.table(["Method", "ORI"] + jailbreaks.map { "ORI, \(RunConfig.promptSetName($0))" } + ["ES(SN−)", "SAS(SN−)", "FULL(SN−)"], order.map { m in
            [m, show(cell(m, "ori"))] + jailbreaks.map { show(cell(m, RunPipeline.jailbreakCellName($0))) }
                + [show(cell(m, "es")), show(cell(m, "sas")), show(cell(m, "full"))]
        })
        let benchNames = config.eval.benchmarks
        if config.eval.capability {
            doc.heading("Capability")
            func bench(_ m: String, _ b: String) -> [String: Any] { ((entry(m)["benchmarks"] as? [String: Any])?[b] as? [String: Any]) ?? [:] }
            let sizes = benchNames.map { b in order.compactMap { bench($0, b)["n"] as? Int }.first.map { "\(b) \($0)" } ?? "\(b) –" }
            doc.paragraph("Scored like lm-evaluation-harness on the OLMES requests, \(config.eval.benchmarkShots)-shot: acc_norm "
                          + "(log-likelihood per byte of the continuation) ± its standard error, in percent; GSM8K greedy exact match. "
                          + "Documents per benchmark (seeded subsets, the same for every method): \(sizes.joined(separator: ", ")). "
                          + "Perplexity on data/perplexity.txt.")
            doc.table(["Method", "Perplexity ↓"] + benchNames.map { $0 == GSM8K.name ? "gsm8k EM ↑" : "\($0) ↑" }, order.map { m in
                [m, fmt(entry(m)["perplexity"])] + benchNames.map { b in
                    let f = bench(m, b)
                    let key = b == GSM8K.name ? "acc" : "acc_norm"
                    guard let v = f[key] as? Double else { return "–" }
                    return String(format: "%.1f", v * 100) + ((f[key + "_stderr"] as? Double).map { String(format: " ± %.1f", $0 * 100) } ?? "")
                }
            })
            let sources = config.eval.overrefusalSources.map(RunConfig.promptSetName)
            doc.heading("Over-refusal per source")
            doc.paragraph("Refused benign prompts (refusal judge), with the Wilson 95% interval; pooled = all sources together.")
            doc.table(["Method"] + sources + ["pooled ↓"], order.map { m in
                let per = (entry(m)["overrefusal_sources"] as? [String: Any]) ?? [:]
                return [m] + sources.map { src -> String in
                    guard let f = per[src] as? [String: Any], let r = f["refused"] as? Int, let n = f["n"] as? Int, n > 0 else { return "–" }
                    var t = String(format: "%.1f%%", 100 * Double(r) / Double(n))
                    if let ci = RunStatistics.interval(f["rate_ci95"]) { t += String(format: " [%.1f–%.1f]", ci.lower * 100, ci.upper * 100) }
                    return t + " (\(r)/\(n))"
                } + [fmt((entry(m)["overrefusal"] as? Double).map { $0 * 100 }, "%.1f%%")]
            })
        }
        doc.heading("Top-k pruning sweep (the attacker prunes the k neurons with the largest effect size)")
        doc.table(["Method"] + ([0] + ks).map { "k=\($0)" } + ["mean (k>0)"], order.map { m in
            [m] + ([0] + ks).map { show(top(m, $0)) } + [fmt(meanTopK(m), "%.1f")]
        })

        // Attribution pruning (re-identified on each model) and each family's strongest fluent setting.
        let attrKs = config.eval.attributionTopK.filter { $0 > 0 }.sorted()
        if !attrKs.isEmpty {
            doc.heading("Attribution pruning (top-k by a·∂margin/∂a, the utility top-Q excluded)")
            let cols = config.eval.excludeUtility.flatMap { q in attrKs.map { (q, $0) } }
            doc.table(["Method"] + cols.map { "k=\($0.1), Q=\($0.0)" }, order.map { m in
                [m] + cols.map { show(cell(m, RunPipeline.attributionCellName(k: $0.1, excludeUtility: $0.0))) }
            })
        }
        if order.contains(where: { entry($0)["strongest_fluent"] != nil }) {
            doc.heading("Strongest fluent setting per attack family")
            doc.paragraph("The most complied among a family's cells whose perplexity stays within 10% of the unattacked model's (ORI perplexity in brackets).")
            doc.table(["Method", "ORI", "activation statistics", "attribution", "refusal direction"], order.map { m in
                let e = entry(m)
                let ppl = (e["perplexity_cells"] as? [String: Double]) ?? [:]
                let sf = (e["strongest_fluent"] as? [String: Any]) ?? [:]
                func best(_ family: String) -> String {
                    guard let b = sf[family] as? [String: Any], let c = b["cell"] as? String else { return "none fluent" }
                    return "\(b["complied"] as? Int ?? 0) (`\(c)`, ppl \(fmt(b["perplexity"])))"
                }
                return [m, "\(show(cell(m, "ori"))) [\(fmt(ppl["ori"]))]", best("activation"), best("attribution"), best("direction")]
            })
        }

        // The plain statement the issue asks for, whichever way it goes.
        doc.heading("Verdict")
        if entry("dpo").isEmpty {
            doc.list(["DPO was not part of this run, so no comparison is made."])
        } else {
            doc.paragraph(verdictRuleText)
            doc.list(order.compactMap { verdictOutcomes[$0]?.text }.map { $0.hasPrefix("- ") ? String($0.dropFirst(2)) : $0 })
        }
        comparisonSection(comparisons, order: order, ks: ks, into: &doc)
        if config.seeds.count > 1 { seedSection(methods: methods, order: order, ks: ks, seeds: config.seeds, into: &doc) }

        // Charts.
        let curve = SVGChart.lines(title: "Complied (ASR count) vs pruned top-k neurons", x: ([0] + ks).map(Double.init),
                                   series: order.map { m in (m, ([0] + ks).map { Double((top(m, $0)["complied"] as? Int) ?? -1) }.map { $0 < 0 ? .nan : $0 }) },
                                   xLabel: "k (neurons pruned)", yLabel: "complied of \(prompts)")
        let table = SVGChart.bars(title: "Complied per attack cell", categories: ["ORI", "ES(SN−)", "SAS(SN−)", "FULL(SN−)"],
                                  series: order.map { m in (m, ["ori", "es", "sas", "full"].map { Double((cell(m, $0)["complied"] as? Int) ?? 0) }) },
                                  yLabel: "complied of \(prompts)")
        try AtomicFile.write(curve, to: runDir + "/pruning_curves.svg")
        try AtomicFile.write(table, to: runDir + "/attack_cells.svg")
        doc.heading("Charts")
        doc.chart(table, file: "attack_cells.svg", alt: "complied per attack cell")
        doc.chart(curve, file: "pruning_curves.svg", alt: "pruning curves")

        // Neurons per round and per layer.
        doc.heading("Safety neurons")
        doc.table(["Method", "ES", "SAS", "union", "rounds (frozen set size)"], order.map { m in
            let n = (entry(m)["neurons"] as? [String: Int]) ?? [:]
            let rounds = (entry(m)["rounds"] as? [[String: Any]]) ?? []
            return [m, "\(n["es"] ?? 0)", "\(n["sas"] ?? 0)", "\(n["union"] ?? 0)",
                    rounds.map { "r\($0["round"] ?? "?"): \($0["frozen"] ?? "?")" }.joined(separator: ", ")]
        })
        if let layers = perLayerUnion(runDir: runDir, methods: order) {
            let chart = SVGChart.bars(title: "Union safety neurons per layer (each model's own identification)",
                                      categories: (0..<layers.count).map(String.init),
                                      series: order.map { m in (m, layers.perMethod[m] ?? []) }, yLabel: "neurons")
            try AtomicFile.write(chart, to: runDir + "/neurons_per_layer.svg")
            doc.chart(chart, file: "neurons_per_layer.svg", alt: "neurons per layer")
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
            doc.heading("Training")
            doc.chart(loss, file: "training_loss.svg", alt: "loss")
            doc.chart(acc, file: "training_accuracy.svg", alt: "reward accuracy")
        }

        // Samples.
        doc.heading("Sample responses (first three prompts of each cell)")
        for m in order {
            for c in ["ori", "sas", "full"] + ks.map { "top\($0)" } {
                let path = runDir + "/attack/\(m)/eval/\(c)/generations.jsonl"
                guard let rows = try? JSONLines.readObjects(path, tolerateTornTail: true), !rows.isEmpty else { continue }
                doc.paragraph("**\(m) · \(c)**")
                doc.list(rows.prefix(3).map { r in
                    let p = ((r["prompt"] as? String) ?? "").prefix(100)
                    let resp = ((r["response"] as? String) ?? "").replacingOccurrences(of: "\n", with: " ").prefix(240)
                    return "*\(p)* → [\((r["verdict"] as? String) ?? "?")] \(resp)"
                })
            }
        }

        doc.heading("Settings and wall time")
        doc.table(["Stage", "Seconds"], stageTimes.map { ["\($0["stage"] ?? "?")", fmt($0["seconds"], "%.1f")] })
        doc.paragraph("The exact settings are in `settings.json` and in `results.json` (`settings`).")
        try AtomicFile.write(doc.markdown, to: runDir + "/report.md")
        try AtomicFile.write(try doc.html(), to: runDir + "/report.html")
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
}
