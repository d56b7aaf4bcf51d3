import Foundation

/// Mutable attribute bag created by `namespace(...)`; shared by reference like jinja2's Namespace.
final class JNamespace {
    var attrs: [(String, JVal)] = []
    func get(_ k: String) -> JVal? { attrs.first(where: { $0.0 == k })?.1 }
    func set(_ k: String, _ v: JVal) {
        if let i = attrs.firstIndex(where: { $0.0 == k }) { attrs[i].1 = v } else { attrs.append((k, v)) }
    }
}

final class JFrame {
    var vars: [String: JVal] = [:]
    init(_ vars: [String: JVal] = [:]) { self.vars = vars }
}

final class JMacro {
    let name: String
    let params: [(String, JExpr?)]
    let body: [JNode]
    let closure: [JFrame]
    /// Set for the implicit `caller` macro of a `{% call %}` block.
    var isCaller = false
    init(name: String, params: [(String, JExpr?)], body: [JNode], closure: [JFrame]) {
        self.name = name
        self.params = params
        self.body = body
        self.closure = closure
    }
}

final class JLoop {
    let items: [JVal]
    var index0 = 0
    init(items: [JVal]) { self.items = items }
}

/// Insertion-ordered dict like Python's; string keys are indexed, other keys are searched linearly.
struct JDict {
    var keys: [JVal] = []
    var values: [JVal] = []
    var stringIndex: [String: Int] = [:]

    var count: Int { keys.count }

    func index(of key: JVal) -> Int? {
        if case .string(let s) = key { return stringIndex[s] }
        return keys.firstIndex(where: { pyEquals($0, key) })
    }

    func get(_ key: JVal) -> JVal? { index(of: key).map { values[$0] } }
    func get(_ key: String) -> JVal? { stringIndex[key].map { values[$0] } }

    mutating func set(_ key: JVal, _ value: JVal) {
        if let i = index(of: key) { values[i] = value; return }
        if case .string(let s) = key { stringIndex[s] = keys.count }
        keys.append(key)
        values.append(value)
    }
}

/// A runtime value: the data types Python hands a template plus jinja2's Undefined and template objects.
indirect enum JVal {
    /// jinja2's default Undefined: prints empty, is falsy and iterates as empty; most other uses fail with `hint`.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JVal])
    case tuple([JVal])
    case dict(JDict)
    case namespace(JNamespace)
    case macro(JMacro)
    case function(String)
    case method(JVal, String)
    case loop(JLoop)

    init(_ v: JinjaValue) {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(JVal.init))
        case .dict(let pairs):
            var d = JDict()
            for (k, x) in pairs { d.set(.string(k), JVal(x)) }
            self = .dict(d)
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return d.count > 0
        default: return true
        }
    }

    /// Python's type name, used in error messages the way CPython words them.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .function: return "builtin_function_or_method"
        case .method: return "builtin_function_or_method"
        case .loop: return "LoopContext"
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    var asInt: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var asDouble: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .bool(let b): return b ? 1 : 0
        case .double(let d): return d
        default: return nil
        }
    }

    var isNumber: Bool { asDouble != nil }
}

// MARK: Python str() / repr()

func pyFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    // Swift's shortest round-trip digits match Python's repr; only the exponent layout can differ.
    var s = d.description
    if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        var mant = String(s[..<e])
        var exp = String(s[s.index(after: e)...])
        if mant.hasSuffix(".0") { mant.removeLast(2) }
        var sign = "+"
        if exp.hasPrefix("-") { sign = "-"; exp.removeFirst() } else if exp.hasPrefix("+") { exp.removeFirst() }
        if exp.count < 2 { exp = "0" + exp }
        s = mant + "e" + sign + exp
    } else if !s.contains(".") && !s.contains("n") {
        s += ".0"
    }
    return s
}

func pyStrRepr(_ s: String) -> String {
    let useDouble = s.contains("'") && !s.contains("\"")
    let q: Character = useDouble ? "\"" : "'"
    var out = String(q)
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(u) == q { out += "\\" + String(q); continue }
            let v = u.value
            if v < 0x20 || v == 0x7F || (v >= 0x80 && v <= 0xA0) || v == 0xAD {
                out += String(format: "\\x%02x", v)
            } else if (v >= 0x2028 && v <= 0x2029) || (v >= 0xD800 && v <= 0xDFFF) {
                out += String(format: "\\u%04x", v)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out.append(q)
    return out
}

func pyRepr(_ v: JVal) -> String { pyRepr(v, depth: 0) }

func pyStr(_ v: JVal) -> String { pyStr(v, depth: 0) }

/// Printing stops descending here; only reachable through a namespace that contains itself,
/// since nested containers are capped at `maxValueDepth` when built.
let maxPrintDepth = 200

func pyRepr(_ v: JVal, depth: Int) -> String {
    switch v {
    case .string(let s): return pyStrRepr(s)
    case .undefined: return "Undefined"
    default: return pyStr(v, depth: depth)
    }
}

func pyStr(_ v: JVal, depth: Int) -> String {
    if depth > maxPrintDepth { return "..." }
    let d = depth + 1
    switch v {
    case .undefined: return ""
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return String(i)
    case .double(let x): return pyFloatRepr(x)
    case .string(let s): return s
    case .list(let a): return "[" + a.map { pyRepr($0, depth: d) }.joined(separator: ", ") + "]"
    case .tuple(let a):
        return a.count == 1 ? "(" + pyRepr(a[0], depth: d) + ",)" : "(" + a.map { pyRepr($0, depth: d) }.joined(separator: ", ") + ")"
    case .dict(let dict):
        return "{" + zip(dict.keys, dict.values).map { pyRepr($0, depth: d) + ": " + pyRepr($1, depth: d) }.joined(separator: ", ") + "}"
    case .namespace(let ns):
        return "<Namespace {" + ns.attrs.map { pyStrRepr($0.0) + ": " + pyRepr($0.1, depth: d) }.joined(separator: ", ") + "}>"
    case .macro(let m): return "<Macro '\(m.name)'>"
    case .function(let n): return "<built-in function \(n)>"
    case .method(let r, let n): return "<built-in method \(n) of \(r.typeName) object>"
    case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.items.count)>"
    }
}

/// Containers built by a template may nest at most this deep, so printing, comparing and releasing
/// values never recurse far enough to exhaust the stack.
let maxValueDepth = 100

/// Nesting depth of containers in `v`, not looking further than `cap` levels; counts visited nodes in `visited`.
func valueDepth(_ v: JVal, cap: Int, visited: inout Int) -> Int {
    visited += 1
    guard cap > 0 else { return 1 }
    switch v {
    case .list(let a), .tuple(let a):
        var m = 0
        for x in a { m = max(m, valueDepth(x, cap: cap - 1, visited: &visited)) }
        return 1 + m
    case .dict(let d):
        var m = 0
        for x in d.values { m = max(m, valueDepth(x, cap: cap - 1, visited: &visited)) }
        return 1 + m
    default: return 0
    }
}

// MARK: Python equality and ordering

func pyEquals(_ a: JVal, _ b: JVal) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined): return true
    case (.undefined, _), (_, .undefined): return false
    case (.none, .none): return true
    case let (.string(x), .string(y)): return x == y
    case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
        return x.count == y.count && zip(x, y).allSatisfy { pyEquals($0, $1) }
    case let (.dict(x), .dict(y)):
        guard x.count == y.count else { return false }
        for (k, v) in zip(x.keys, x.values) {
            guard let w = y.get(k), pyEquals(v, w) else { return false }
        }
        return true
    case let (.namespace(x), .namespace(y)): return x === y
    case let (.macro(x), .macro(y)): return x === y
    case let (.loop(x), .loop(y)): return x === y
    case let (.function(x), .function(y)): return x == y
    default:
        if let x = a.asInt, let y = b.asInt { return x == y }
        if let x = a.asDouble, let y = b.asDouble { return x == y }
        return false
    }
}

/// Python `<`; nil when the types are not orderable (a TypeError in Python).
func pyLess(_ a: JVal, _ b: JVal) -> Bool? {
    switch (a, b) {
    case let (.string(x), .string(y)):
        return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
    case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)):
        for (p, q) in zip(x, y) where !pyEquals(p, q) { return pyLess(p, q) }
        return x.count < y.count
    default:
        if let x = a.asInt, let y = b.asInt { return x < y }
        if let x = a.asDouble, let y = b.asDouble { return x < y }
        return nil
    }
}

// MARK: string helpers (code-point semantics, as Python)

extension String {
    var scalarCount: Int { unicodeScalars.count }

    func pyStrip(_ chars: String?, left: Bool = true, right: Bool = true) -> String {
        let scalars = Array(unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        func strip(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? JinjaLexer.isPyWhitespace(u) }
        var lo = 0
        var hi = scalars.count
        if left { while lo < hi, strip(scalars[lo]) { lo += 1 } }
        if right { while hi > lo, strip(scalars[hi - 1]) { hi -= 1 } }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[lo..<hi])
        return String(out)
    }

    /// Python str.splitlines() boundaries.
    func pySplitLines() -> [String] {
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        let scalars = Array(unicodeScalars)
        var i = 0
        while i < scalars.count {
            let u = scalars[i]
            switch u.value {
            case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                lines.append(String(current)); current = .init()
            case 0x0D:
                lines.append(String(current)); current = .init()
                if i + 1 < scalars.count, scalars[i + 1] == "\n" { i += 1 }
            default:
                current.append(u)
            }
            i += 1
        }
        if !current.isEmpty { lines.append(String(current)) }
        return lines
    }
}

func stringFromScalars<S: Sequence>(_ s: S) -> String where S.Element == Unicode.Scalar {
    var v = String.UnicodeScalarView()
    v.append(contentsOf: s)
    return String(v)
}
