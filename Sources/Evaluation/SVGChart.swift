import Foundation

/// Minimal standalone SVG charts (no scripts, no external assets) for reports.
public enum SVGChart {
    /// Okabe–Ito palette: distinguishable under the common colour-vision deficiencies.
    public static let palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

    public struct Layout: Sendable {
        public var width: Double = 760
        public var height: Double = 420
        public var marginLeft: Double = 72
        public var marginRight: Double = 24
        public var marginTop: Double = 72
        public var marginBottom: Double = 78
        public init() {}
        public init(width: Double, height: Double) { self.width = width; self.height = height }
    }

    /// Escapes text for use in SVG/HTML/XML content and attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // XML 1.0 forbids most C0 controls even as character references; drop them.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { continue }
                if ch.value == 0xFFFE || ch.value == 0xFFFF { continue }
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Round tick values covering [lo, hi] with about `target` steps of 1, 2, 2.5 or 5 × 10^k.
    public static func niceTicks(lo: Double, hi: Double, target: Int = 5) -> [Double] {
        var lo = lo, hi = hi
        if !lo.isFinite || !hi.isFinite { return [0, 1] }
        if hi < lo { swap(&lo, &hi) }
        if hi == lo { hi = lo + (lo == 0 ? 1 : abs(lo) * 0.1) }
        let raw = (hi - lo) / Double(max(1, target))
        let exponent = floor(log10(raw))
        let mag = pow(10, exponent)
        let mult = [1.0, 2.0, 2.5, 5.0, 10.0].first { $0 * mag >= raw } ?? 10
        let step = mult * mag
        // Ticks are k × mult ÷ 10^-e (an exact integer) rather than a running sum, so 0.6 prints as 0.6.
        let value: (Int) -> Double = { k in exponent < 0 ? Double(k) * mult / pow(10, -exponent) : Double(k) * mult * mag }
        let k0 = Int(floor(lo / step)), k1 = Int(ceil(hi / step))
        guard k1 - k0 < 200 else { return [lo, hi] }
        var ticks: [Double] = []
        for k in k0...max(k0, k1) { ticks.append(value(k) == 0 ? 0 : value(k)) }
        return ticks
    }

    /// Formats a tick/value with just enough decimals for the step.
    public static func format(_ v: Double, step: Double? = nil) -> String {
        guard v.isFinite else { return "n/a" }
        var decimals = 0
        if let step, step > 0, step.isFinite {
            // Fewest decimals that represent the step exactly (2.5 → 1, 0.25 → 2).
            while decimals < 6 {
                let scaled = step * pow(10, Double(decimals))
                if abs(scaled - scaled.rounded()) < 1e-6 { break }
                decimals += 1
            }
        } else if v != v.rounded() {
            decimals = abs(v) >= 10 ? 1 : 2
        }
        var s = String(format: "%.\(decimals)f", v)
        if s.hasPrefix("-"), Double(s) == 0 { s.removeFirst() }
        return s
    }

    private static func n(_ v: Double) -> String { String(format: "%.2f", v) }

    private static func header(_ title: String, _ l: Layout) -> String {
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(l.width))\" height=\"\(Int(l.height))\" viewBox=\"0 0 \(Int(l.width)) \(Int(l.height))\" font-family=\"Helvetica, Arial, sans-serif\" role=\"img\" aria-label=\"\(escape(title))\">\n"
        s += "<title>\(escape(title))</title>\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(l.width))\" height=\"\(Int(l.height))\" fill=\"#ffffff\"/>\n"
        s += "<text x=\"\(n(l.width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
        return s
    }

    private static func legend(_ names: [String], _ l: Layout, lines: Bool) -> String {
        var s = "<g class=\"legend\" font-size=\"12\">\n"
        var x = l.marginLeft
        var y = 44.0
        for (i, name) in names.enumerated() {
            let w = 22 + Double(name.count) * 7 + 14
            if x + w > l.width - l.marginRight && x > l.marginLeft { x = l.marginLeft; y += 16 }
            let c = palette[i % palette.count]
            if lines {
                s += "<line x1=\"\(n(x))\" y1=\"\(n(y - 4))\" x2=\"\(n(x + 16))\" y2=\"\(n(y - 4))\" stroke=\"\(c)\" stroke-width=\"2.5\"/>\n"
            } else {
                s += "<rect x=\"\(n(x))\" y=\"\(n(y - 10))\" width=\"12\" height=\"12\" fill=\"\(c)\"/>\n"
            }
            s += "<text x=\"\(n(x + 20))\" y=\"\(n(y))\">\(escape(name))</text>\n"
            x += w
        }
        return s + "</g>\n"
    }

    private static func yAxis(_ ticks: [Double], _ l: Layout, label: String, map: (Double) -> Double) -> String {
        let step = ticks.count > 1 ? ticks[1] - ticks[0] : 1
        var s = "<g class=\"y-axis\" font-size=\"11\">\n"
        for t in ticks {
            let y = map(t)
            s += "<line x1=\"\(n(l.marginLeft))\" y1=\"\(n(y))\" x2=\"\(n(l.width - l.marginRight))\" y2=\"\(n(y))\" stroke=\"#e3e3e3\"/>\n"
            s += "<line x1=\"\(n(l.marginLeft - 5))\" y1=\"\(n(y))\" x2=\"\(n(l.marginLeft))\" y2=\"\(n(y))\" stroke=\"#333\"/>\n"
            s += "<text x=\"\(n(l.marginLeft - 8))\" y=\"\(n(y + 4))\" text-anchor=\"end\">\(format(t, step: step))</text>\n"
        }
        let midY = (l.marginTop + l.height - l.marginBottom) / 2
        s += "<line x1=\"\(n(l.marginLeft))\" y1=\"\(n(l.marginTop))\" x2=\"\(n(l.marginLeft))\" y2=\"\(n(l.height - l.marginBottom))\" stroke=\"#333\"/>\n"
        s += "<text x=\"16\" y=\"\(n(midY))\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 16 \(n(midY)))\">\(escape(label))</text>\n"
        return s + "</g>\n"
    }

    /// Grouped bar chart: one group per category, one bar per series. Non-finite values draw no bar.
    public static func bars(title: String, categories: [String], series: [(name: String, values: [Double])],
                            yLabel: String, yMax: Double? = nil, layout: Layout = Layout()) -> String {
        let l = layout
        let finite = series.flatMap { $0.values }.filter { $0.isFinite }
        let lo = min(0, finite.min() ?? 0)
        let hi = max(yMax ?? 0, finite.max() ?? 1, lo + 1e-9)
        let ticks = niceTicks(lo: lo, hi: hi)
        let y0 = ticks.first ?? 0, y1 = ticks.last ?? 1
        let plotH = l.height - l.marginTop - l.marginBottom
        let plotW = l.width - l.marginLeft - l.marginRight
        let map: (Double) -> Double = { v in l.marginTop + plotH * (1 - (v - y0) / max(1e-12, y1 - y0)) }
        var s = header(title, l)
        s += legend(series.map(\.name), l, lines: false)
        s += yAxis(ticks, l, label: yLabel, map: map)
        let groups = max(1, categories.count)
        let groupW = plotW / Double(groups)
        let barW = groupW * 0.8 / Double(max(1, series.count))
        let rotate = categories.contains { Double($0.count) * 6.5 > groupW }
        let baseY = map(max(y0, min(0, y1)))
        s += "<g class=\"bars\">\n"
        for (ci, cat) in categories.enumerated() {
            let gx = l.marginLeft + groupW * Double(ci)
            for (si, ser) in series.enumerated() {
                guard ci < ser.values.count, ser.values[ci].isFinite else { continue }
                let v = ser.values[ci]
                let x = gx + groupW * 0.1 + barW * Double(si)
                let yv = map(v)
                let top = min(yv, baseY), h = abs(baseY - yv)
                s += "<rect x=\"\(n(x))\" y=\"\(n(top))\" width=\"\(n(max(1, barW - 2)))\" height=\"\(n(h))\" fill=\"\(palette[si % palette.count])\"><title>\(escape(ser.name)) · \(escape(cat)): \(format(v))</title></rect>\n"
                if barW >= 18 {
                    s += "<text x=\"\(n(x + barW / 2 - 1))\" y=\"\(n(top - 3))\" text-anchor=\"middle\" font-size=\"10\">\(format(v))</text>\n"
                }
            }
            let cx = gx + groupW / 2
            let ly = l.height - l.marginBottom + 16
            if rotate {
                s += "<text x=\"\(n(cx))\" y=\"\(n(ly))\" text-anchor=\"end\" font-size=\"11\" transform=\"rotate(-30 \(n(cx)) \(n(ly)))\">\(escape(cat))</text>\n"
            } else {
                s += "<text x=\"\(n(cx))\" y=\"\(n(ly))\" text-anchor=\"middle\" font-size=\"11\">\(escape(cat))</text>\n"
            }
        }
        s += "</g>\n"
        s += "<line x1=\"\(n(l.marginLeft))\" y1=\"\(n(baseY))\" x2=\"\(n(l.width - l.marginRight))\" y2=\"\(n(baseY))\" stroke=\"#333\"/>\n"
        return s + "</svg>\n"
    }

    /// Line chart over shared x values; each series has one y per x (non-finite values break the line).
    public static func lines(title: String, x: [Double], series: [(name: String, values: [Double])],
                             xLabel: String, yLabel: String, layout: Layout = Layout()) -> String {
        let l = layout
        let fx = x.filter { $0.isFinite }
        let xt = niceTicks(lo: fx.min() ?? 0, hi: fx.max() ?? 1)
        let fy = series.flatMap { $0.values }.filter { $0.isFinite }
        let yt = niceTicks(lo: min(0, fy.min() ?? 0), hi: fy.max() ?? 1)
        let plotH = l.height - l.marginTop - l.marginBottom
        let plotW = l.width - l.marginLeft - l.marginRight
        let x0 = xt.first ?? 0, x1 = xt.last ?? 1, y0 = yt.first ?? 0, y1 = yt.last ?? 1
        let mapX: (Double) -> Double = { v in l.marginLeft + plotW * (v - x0) / max(1e-12, x1 - x0) }
        let mapY: (Double) -> Double = { v in l.marginTop + plotH * (1 - (v - y0) / max(1e-12, y1 - y0)) }
        var s = header(title, l)
        s += legend(series.map(\.name), l, lines: true)
        s += yAxis(yt, l, label: yLabel, map: mapY)
        let xstep = xt.count > 1 ? xt[1] - xt[0] : 1
        let axisY = l.height - l.marginBottom
        s += "<g class=\"x-axis\" font-size=\"11\">\n"
        s += "<line x1=\"\(n(l.marginLeft))\" y1=\"\(n(axisY))\" x2=\"\(n(l.width - l.marginRight))\" y2=\"\(n(axisY))\" stroke=\"#333\"/>\n"
        for t in xt {
            let px = mapX(t)
            s += "<line x1=\"\(n(px))\" y1=\"\(n(axisY))\" x2=\"\(n(px))\" y2=\"\(n(axisY + 5))\" stroke=\"#333\"/>\n"
            s += "<text x=\"\(n(px))\" y=\"\(n(axisY + 18))\" text-anchor=\"middle\">\(format(t, step: xstep))</text>\n"
        }
        s += "<text x=\"\(n(l.marginLeft + plotW / 2))\" y=\"\(n(l.height - 24))\" text-anchor=\"middle\" font-size=\"12\">\(escape(xLabel))</text>\n"
        s += "</g>\n<g class=\"lines\">\n"
        for (si, ser) in series.enumerated() {
            let c = palette[si % palette.count]
            var segments: [[(Double, Double)]] = [[]]
            for (i, xv) in x.enumerated() {
                guard i < ser.values.count, ser.values[i].isFinite, xv.isFinite else {
                    if !(segments.last?.isEmpty ?? true) { segments.append([]) }
                    continue
                }
                segments[segments.count - 1].append((xv, ser.values[i]))
            }
            for seg in segments where seg.count >= 2 {
                let pts = seg.map { "\(n(mapX($0.0))),\(n(mapY($0.1)))" }.joined(separator: " ")
                s += "<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2.5\"/>\n"
            }
            for seg in segments {
                for (xv, yv) in seg {
                    s += "<circle cx=\"\(n(mapX(xv)))\" cy=\"\(n(mapY(yv)))\" r=\"3.5\" fill=\"\(c)\"><title>\(escape(ser.name)): (\(format(xv)), \(format(yv)))</title></circle>\n"
                }
            }
        }
        s += "</g>\n"
        return s + "</svg>\n"
    }
}
