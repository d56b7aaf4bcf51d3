import Foundation
import XCTest
import ModelFiles
import Tokenization
import Runtime
import Transformer
import Evaluation
import SafetyNeurons

/// SplitMix64: tiny, seedable, identical on every platform, so a failing case is reproducible from its seed.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[int(0..<a.count)] }
}

/// Values that make length/count/offset/dimension fields absurd.
let interestingU64: [UInt64] = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023, 4096, 65535, 65536,
                                0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 1 << 40, 1 << 62,
                                0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFE, 0xFFFF_FFFF_FFFF_FFFF]

enum ByteMutator {
    /// One random structural mutation of `bytes`; `focus` is the byte range most mutations land in
    /// (e.g. a GGUF header), since bytes in tensor data rarely reach new code.
    static func mutate(_ input: [UInt8], rng: inout SeededRNG, focus: Range<Int>? = nil) -> [UInt8] {
        var b = input
        if b.isEmpty { return [UInt8(truncatingIfNeeded: rng.next())] }
        let region = focus.map { $0.clamped(to: 0..<b.count) } ?? (0..<b.count)
        let r = region.isEmpty ? 0..<b.count : region
        func pos() -> Int { rng.int(r) }
        switch rng.int(0..<9) {
        case 0: // flip 1..8 bits
            for _ in 0..<rng.int(1..<9) { let p = pos(); b[p] ^= UInt8(1 << rng.int(0..<8)) }
        case 1: // random bytes
            for _ in 0..<rng.int(1..<5) { b[pos()] = UInt8(truncatingIfNeeded: rng.next()) }
        case 2: // truncate
            b = Array(b.prefix(rng.chance(0.5) ? rng.int(0..<b.count) : pos()))
        case 3, 4: // absurd little-endian u64 at a random (often aligned) spot
            var p = pos()
            if rng.chance(0.6) { p -= p % 4 }
            let v = rng.pick(interestingU64)
            for k in 0..<8 where p + k < b.count { b[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        case 5: // absurd u32
            var p = pos(); p -= p % 4
            let v = UInt32(truncatingIfNeeded: rng.pick(interestingU64))
            for k in 0..<4 where p + k < b.count { b[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
        case 6: // delete a range
            let p = pos(); let n = min(b.count - p, rng.int(1..<64))
            b.removeSubrange(p..<(p + n))
        case 7: // duplicate a range
            let p = pos(); let n = min(b.count - p, rng.int(1..<64))
            b.insert(contentsOf: Array(b[p..<(p + n)]), at: rng.int(0..<(b.count + 1)))
        default: // insert special bytes
            let specials: [[UInt8]] = [[0], [0xFF], [0xC3], [0xED, 0xA0, 0x80], [0x22], [0x5C], [0x7B], [0x5B], [0x0A], [0x0D], [0x2C]]
            b.insert(contentsOf: rng.pick(specials), at: rng.int(0..<(b.count + 1)))
        }
        return b
    }
}

/// Replaces a random node of a JSON document by a hostile value (or drops it), keeping the document valid JSON.
enum JSONMutator {
    static let hostile: [Any] = [NSNull(), -1, 0, 1, 2, 3, -2147483649, 4294967296, 1 << 24, (1 << 24) + 1, 1 << 40,
                                 Int64.max, Int64.min, 1e300, -1e300, 0.5, 1e-300, "", "x", "F32", "BF16", "I64", "🙂",
                                 String(repeating: "a", count: 3000), [Any](), [0], [-1, -1], [1 << 40, 1 << 40],
                                 [[1, 2], [3, 4]], [String: Any](), ["type": "BPE"], true, false]

    static func mutate(_ root: Any, rng: inout SeededRNG) -> Any {
        var paths: [[Any]] = []
        func walk(_ v: Any, _ p: [Any]) {
            if paths.count > 4000 { return }
            paths.append(p)
            if let d = v as? [String: Any] { for (k, x) in d { walk(x, p + [k]) } }
            else if let a = v as? [Any] { for (i, x) in a.enumerated() where i < 64 || rng.chance(0.01) { walk(x, p + [i]) } }
        }
        walk(root, [])
        let path = rng.pick(paths)
        let drop = rng.chance(0.2)
        let value = rng.pick(hostile)
        func rewrite(_ v: Any, _ rest: ArraySlice<Any>) -> Any? {
            guard let head = rest.first else { return drop ? nil : value }
            if var d = v as? [String: Any], let k = head as? String {
                d[k] = rewrite(d[k] as Any, rest.dropFirst())
                return d
            }
            if var a = v as? [Any], let i = head as? Int, i < a.count {
                if let n = rewrite(a[i], rest.dropFirst()) { a[i] = n } else { a.remove(at: i) }
                return a
            }
            return v
        }
        return rewrite(root, path[...]) ?? NSNull()
    }

    static func mutate(data: Data, rng: inout SeededRNG) -> Data {
        guard let obj = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return data }
        let m = mutate(obj, rng: &rng)
        return (try? JSONSerialization.data(withJSONObject: m, options: [.fragmentsAllowed])) ?? data
    }
}

/// Fails a case that runs longer than `limit`, and aborts the whole process (with the case named) if
/// one never returns, so CI reports a hang instead of timing out silently.
final class Watchdog: @unchecked Sendable {
    static let shared = Watchdog()
    private let lock = NSLock()
    private var label = ""
    private var started: Date?
    private var thread: Thread?
    static let hangLimit: TimeInterval = 60

    private init() {
        let t = Thread { [unowned self] in
            while true {
                Thread.sleep(forTimeInterval: 1)
                self.lock.lock()
                let s = self.started, l = self.label
                self.lock.unlock()
                if let s, Date().timeIntervalSince(s) > Watchdog.hangLimit {
                    FileHandle.standardError.write(Data("ReliabilityTests: HANG in case \(l)\n".utf8))
                    abort()
                }
            }
        }
        t.start()
        thread = t
    }

    func begin(_ l: String) { lock.lock(); label = l; started = Date(); lock.unlock() }
    func end() { lock.lock(); started = nil; lock.unlock() }
}

/// Counts outcomes of one mutation run and checks the contract: success, or a typed error naming the file.
struct CaseRunner {
    let suite: String
    var successes = 0
    var failures = 0
    var slowest: (TimeInterval, String) = (0, "")
    var errorKinds: [String: Int] = [:]
    static let perCaseLimit: TimeInterval = 2

    init(_ suite: String) { self.suite = suite }

    /// `names`: strings of which at least one must appear in the error's description (a file name).
    mutating func run(_ label: String, names: [String], file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
        let full = "\(suite)/\(label)"
        Watchdog.shared.begin(full)
        let t0 = Date()
        do {
            try body()
            successes += 1
        } catch {
            failures += 1
            let type = String(describing: Swift.type(of: error))
            errorKinds[type, default: 0] += 1
            let text = String(describing: error)
            if !Self.isTyped(error) {
                XCTFail("\(full): untyped error \(type): \(text)", file: file, line: line)
            } else if !names.contains(where: { text.contains($0) }) {
                XCTFail("\(full): error does not name \(names): \(text)", file: file, line: line)
            } else if text.contains("\n") && !(error is ChatTemplateError) {
                XCTFail("\(full): error is not one line: \(text.debugDescription)", file: file, line: line)
            }
        }
        let dt = Date().timeIntervalSince(t0)
        Watchdog.shared.end()
        if dt > slowest.0 { slowest = (dt, label) }
        if dt > Self.perCaseLimit {
            XCTFail("\(full): took \(String(format: "%.2f", dt)) s (limit \(Self.perCaseLimit) s)", file: file, line: line)
        }
    }

    static func isTyped(_ e: Error) -> Bool {
        e is ModelFileError || e is RuntimeError || e is TokenizerError || e is ChatTemplateError
            || e is EvaluationError || e is SafetyNeuronsError || e is InferenceError
    }

    func report() {
        let kinds = errorKinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("[\(suite)] cases \(successes + failures): ok \(successes), rejected \(failures) (\(kinds)); slowest \(String(format: "%.3f", slowest.0)) s (\(slowest.1)); maxrss \(maxRSSMB()) MB")
    }
}

func maxRSSMB() -> Int {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return u.ru_maxrss / 1024
}

/// A scratch folder in RAM when available (thousands of small writes).
func scratchFolder(_ name: String) -> URL {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
    let u = base.appendingPathComponent("safeneuron-reliab-\(getpid())-\(name)")
    try? FileManager.default.removeItem(at: u)
    try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

func write(_ bytes: [UInt8], to url: URL) { FileManager.default.createFile(atPath: url.path, contents: Data(bytes)) }

/// Number of cases per reader; `RELIAB_SCALE=10` runs ten times more.
let scale: Int = Int(ProcessInfo.processInfo.environment["RELIAB_SCALE"] ?? "") ?? 1
