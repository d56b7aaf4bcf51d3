import Foundation

/// The one progress line every long loop uses: step/total, rate, ETA and free-form fields, on stderr.
/// Redraws at most a few times a second; in non-terminals it prints a line every `logEvery` seconds.
public final class Progress: @unchecked Sendable {
    public let label: String
    public let total: Int
    private let start = Date()
    private var lastPrint = Date.distantPast
    private let interval: TimeInterval
    private let isTTY = isatty(2) != 0
    private let lock = NSLock()
    public private(set) var done = 0

    public init(_ label: String, total: Int, interval: TimeInterval? = nil) {
        self.label = label; self.total = total
        self.interval = interval ?? (isatty(2) != 0 ? 0.25 : 10)
    }

    public var elapsed: TimeInterval { Date().timeIntervalSince(start) }

    /// Advances by `by` units; `fields` are appended as `key value` pairs (e.g. loss, tokens/s).
    public func advance(by n: Int = 1, unit: String = "it", fields: [(String, String)] = [], force: Bool = false) {
        lock.lock(); defer { lock.unlock() }
        done += n
        let now = Date()
        guard force || done >= total || now.timeIntervalSince(lastPrint) >= interval else { return }
        lastPrint = now
        let el = now.timeIntervalSince(start)
        let rate = el > 0 ? Double(done) / el : 0
        let eta = rate > 0 && total > done ? Double(total - done) / rate : 0
        var line = "\(label) \(done)/\(total) \(String(format: "%.2f", rate)) \(unit)/s ETA \(Progress.clock(eta))"
        for (k, v) in fields { line += " \(k) \(v)" }
        FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[K" : "") + line + (isTTY ? "" : "\n")).utf8))
    }

    public func finish(_ message: String? = nil) {
        let el = elapsed
        let line = "\(label) done: \(done)/\(total) in \(Progress.clock(el))" + (message.map { " \($0)" } ?? "")
        FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[K" : "") + line + "\n").utf8))
    }

    public static func clock(_ s: TimeInterval) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    public static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
