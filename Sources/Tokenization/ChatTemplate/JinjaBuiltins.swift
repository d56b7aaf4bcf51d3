import Foundation

enum JinjaBuiltins {
    static let filterNames: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
        "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
        "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]
    static let testNames: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter",
        "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower", "lt",
        "lessthan", "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test",
        "true", "undefined", "upper",
    ]
}

extension JinjaInterpreter {
    func bind(_ pos: [JVal], _ kw: [(String, JVal)], _ names: [String], _ fn: String, at off: Int?) throws -> [JVal?] {
        guard pos.count <= names.count else {
            throw JinjaFailure(.runtime, "\(fn)() takes at most \(names.count) argument(s) (\(pos.count) given)", at: off)
        }
        var r = [JVal?](repeating: nil, count: names.count)
        for (i, p) in pos.enumerated() { r[i] = p }
        for (k, v) in kw {
            guard let i = names.firstIndex(of: k) else {
                throw JinjaFailure(.runtime, "\(fn)() got an unexpected keyword argument '\(k)'", at: off)
            }
            r[i] = v
        }
        return r
    }

    func requireString(_ v: JVal, _ what: String, at off: Int?) throws -> String {
        if case .string(let s) = v { return s }
        if v.isUndefined { throw undefinedFailure(v, at: off) }
        throw JinjaFailure(.runtime, "\(what) expects a string, got '\(v.typeName)'", at: off)
    }

    // MARK: calls

    func call(_ fn: JVal, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> JVal {
        switch fn {
        case .macro(let m):
            return try callMacro(m, pos, kw, caller: nil, at: off)
        case .function(let name):
            return try callGlobal(name, pos, kw, at: off)
        case .method(let recv, let name):
            return try callMethod(recv, name, pos, kw, at: off)
        case .undefined:
            throw undefinedFailure(fn, at: off)
        default:
            throw JinjaFailure(.runtime, "'\(fn.typeName)' object is not callable", at: off)
        }
    }

    func callGlobal(_ name: String, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> JVal {
        switch name {
        case "raise_exception":
            let a = try bind(pos, kw, ["message"], name, at: off)
            throw JinjaFailure(.raised, a[0].map(pyStr) ?? "", at: off)
        case "strftime_now":
            let a = try bind(pos, kw, ["format"], name, at: off)
            return .string(pyStrftime(try requireString(a[0] ?? .undefined(hint: "missing format"), "strftime_now", at: off),
                                      now, timeZone))
        case "range":
            guard !pos.isEmpty, pos.count <= 3, kw.isEmpty else {
                throw JinjaFailure(.runtime, "range expected 1 to 3 integer arguments", at: off)
            }
            var ints: [Int] = []
            for p in pos {
                guard let i = p.asInt else { throw JinjaFailure(.runtime, "'\(p.typeName)' object cannot be interpreted as an integer", at: off) }
                ints.append(i)
            }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count == 3 ? ints[2] : 1)
            if step == 0 { throw JinjaFailure(.runtime, "range() arg 3 must not be zero", at: off) }
            // The span of two Ints can exceed Int.max (range(-2**63+1, 2**63-1)); count in UInt.
            let span: UInt = step > 0 ? (start < stop ? UInt(bitPattern: stop &- start) : 0)
                                      : (start > stop ? UInt(bitPattern: start &- stop) : 0)
            let countU = span == 0 ? 0 : (span - 1) / step.magnitude + 1
            let count = countU > 100_000 ? 100_001 : Int(countU)
            // The jinja2 sandbox refuses ranges above MAX_RANGE; we keep the same bound and message.
            if count > 100_000 {
                throw JinjaFailure(.limitExceeded, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).", at: off)
            }
            try charge(count, at: off)
            return .list((0..<count).map { .int(start + $0 * step) })
        case "namespace":
            let ns = JNamespace()
            for p in pos {
                guard case .dict(let d) = p else { throw JinjaFailure(.runtime, "namespace() positional argument must be a mapping", at: off) }
                for (k, v) in zip(d.keys, d.values) { ns.set(pyStr(k), v) }
            }
            for (k, v) in kw {
                if k.hasPrefix("_") { throw JinjaFailure(.runtime, "namespace attributes cannot start with '_'", at: off) }
                ns.set(k, v)
            }
            return .namespace(ns)
        case "dict":
            var d = JDict()
            for p in pos {
                switch p {
                case .dict(let src): for (k, v) in zip(src.keys, src.values) { d.set(k, v) }
                case .list(let items), .tuple(let items):
                    for it in items {
                        let pair = try iterate(it, at: off)
                        guard pair.count == 2 else { throw JinjaFailure(.runtime, "dictionary update sequence element has wrong length", at: off) }
                        d.set(pair[0], pair[1])
                    }
                default: throw JinjaFailure(.runtime, "'\(p.typeName)' object is not iterable", at: off)
                }
            }
            for (k, v) in kw { d.set(.string(k), v) }
            try checkNesting(d.values, at: off)
            return .dict(d)
        default:
            throw JinjaFailure(.unsupported, "function '\(name)' is not supported", at: off)
        }
    }

    // MARK: methods of str / dict / list

    func callMethod(_ recv: JVal, _ name: String, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> JVal {
        if isUnsafeMethod(recv, name) { throw unsafeAccess(recv, name, at: off) }
        switch recv {
        case .string(let s):
            try charge(s.utf8.count, at: off)
            return try stringMethod(s, name, pos, kw, at: off)
        case .dict(let d):
            switch name {
            case "items":
                try checkNesting(d.values, at: off)
                return .list(zip(d.keys, d.values).map { .tuple([$0, $1]) })
            case "keys": return .list(d.keys)
            case "values": return .list(d.values)
            case "get":
                let a = try bind(pos, kw, ["key", "default"], "get", at: off)
                guard let k = a[0] else { throw JinjaFailure(.runtime, "get expected at least 1 argument", at: off) }
                return d.get(k) ?? a[1] ?? .none
            case "copy": return recv
            default: break
            }
        case .list(let l), .tuple(let l):
            switch name {
            case "index":
                let a = try bind(pos, kw, ["value"], "index", at: off)
                if let v = a[0], let i = l.firstIndex(where: { pyEquals($0, v) }) { return .int(i) }
                throw JinjaFailure(.runtime, "value is not in list", at: off)
            case "count":
                let a = try bind(pos, kw, ["value"], "count", at: off)
                return .int(l.filter { pyEquals($0, a[0] ?? .none) }.count)
            case "copy": return recv
            default: break
            }
        case .loop(let l) where name == "cycle":
            guard !pos.isEmpty else { throw JinjaFailure(.runtime, "no items for cycling given", at: off) }
            return pos[l.index0 % pos.count]
        case .function("dict") where name == "fromkeys":
            let a = try bind(pos, kw, ["iterable", "value"], "fromkeys", at: off)
            var d = JDict()
            for k in try iterate(a[0] ?? .list([]), at: off) { d.set(k, a[1] ?? .none) }
            return .dict(d)
        default: break
        }
        throw JinjaFailure(.unsupported, "method '\(name)' of '\(recv.typeName)' is not supported", at: off)
    }

    func stringMethod(_ s: String, _ name: String, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> JVal {
        func optString(_ v: JVal?) throws -> String? {
            guard let v = v else { return nil }
            if case .none = v { return nil }
            return try requireString(v, name, at: off)
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let a = try bind(pos, kw, ["chars"], name, at: off)
            return .string(s.pyStrip(try optString(a[0]), left: name != "rstrip", right: name != "lstrip"))
        case "upper": return .string(s.uppercased())
        case "lower", "casefold": return .string(s.lowercased())
        case "swapcase":
            return .string(String(s.map { $0.isUppercase ? Character($0.lowercased()) : Character($0.uppercased()) }))
        case "title": return .string(pyTitle(s))
        case "capitalize": return .string(pyCapitalize(s))
        case "startswith", "endswith":
            let a = try bind(pos, kw, ["prefix"], name, at: off)
            var options: [String] = []
            switch a[0] ?? .none {
            case .string(let p): options = [p]
            case .tuple(let items), .list(let items): options = try items.map { try requireString($0, name, at: off) }
            default: throw JinjaFailure(.runtime, "\(name) first arg must be str or a tuple of str", at: off)
            }
            let sc = Array(s.unicodeScalars)
            return .bool(options.contains { p in
                let pc = Array(p.unicodeScalars)
                guard pc.count <= sc.count else { return false }
                return name == "startswith" ? Array(sc[0..<pc.count]) == pc : Array(sc[(sc.count - pc.count)...]) == pc
            })
        case "split", "rsplit":
            let a = try bind(pos, kw, ["sep", "maxsplit"], name, at: off)
            let sep = try optString(a[0])
            let maxsplit = a[1]?.asInt ?? -1
            return .list(pySplit(s, sep: sep, maxsplit: maxsplit, fromRight: name == "rsplit").map { .string($0) })
        case "splitlines": return .list(s.pySplitLines().map { .string($0) })
        case "replace":
            let a = try bind(pos, kw, ["old", "new", "count"], name, at: off)
            let old = try requireString(a[0] ?? .none, name, at: off)
            let new = try requireString(a[1] ?? .none, name, at: off)
            let r = pyReplace(s, old, new, count: a[2]?.asInt ?? -1, maxBytes: limits.maxOutputBytes)
            try checkSize(r.utf8.count, at: off)
            return .string(r)
        case "join":
            let a = try bind(pos, kw, ["iterable"], name, at: off)
            let items = try iterate(a[0] ?? .list([]), at: off)
            let parts = try items.map { try requireString($0, "join", at: off) }
            let r = parts.joined(separator: s)
            try checkSize(r.utf8.count, at: off)
            return .string(r)
        case "find", "index", "rfind", "rindex", "count":
            let a = try bind(pos, kw, ["sub"], name, at: off)
            let sub = try requireString(a[0] ?? .none, name, at: off)
            if name == "count" { return .int(pyCount(s, sub)) }
            let found = name.hasPrefix("r") ? scalarRFind(s, sub) : scalarFind(s, sub)
            if let f = found { return .int(f) }
            if name.hasSuffix("index") { throw JinjaFailure(.runtime, "substring not found", at: off) }
            return .int(-1)
        case "removeprefix", "removesuffix":
            let a = try bind(pos, kw, ["affix"], name, at: off)
            let p = Array(try requireString(a[0] ?? .none, name, at: off).unicodeScalars)
            let sc = Array(s.unicodeScalars)
            guard p.count <= sc.count, !p.isEmpty else { return .string(s) }
            if name == "removeprefix", Array(sc[0..<p.count]) == p { return .string(stringFromScalars(sc[p.count...])) }
            if name == "removesuffix", Array(sc[(sc.count - p.count)...]) == p { return .string(stringFromScalars(sc[..<(sc.count - p.count)])) }
            return .string(s)
        case "isdigit", "isnumeric", "isdecimal":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(JinjaLexer.isPyWhitespace))
        case "isupper":
            return .bool(s.contains { $0.isCased } && !s.contains { $0.isLowercase })
        case "islower":
            return .bool(s.contains { $0.isCased } && !s.contains { $0.isUppercase })
        default:
            throw JinjaFailure(.unsupported, "str.\(name)() is not supported", at: off)
        }
    }

    // MARK: filters

    func applyFilter(_ name: String, _ v: JVal, _ args: JArgs, at off: Int) throws -> JVal {
        let (pos, kw) = try evalArgs(args)
        return try filter(name, v, pos, kw, at: off)
    }

    func attrGetter(_ path: JVal, at off: Int) -> (JVal) throws -> JVal {
        let parts: [JVal]
        if case .string(let s) = path {
            parts = s.split(separator: ".", omittingEmptySubsequences: false).map { p in
                if let i = Int(p) { return .int(i) }
                return .string(String(p))
            }
        } else {
            parts = [path]
        }
        return { item in
            var cur = item
            for p in parts {
                cur = try self.getItem(cur, p, at: off)
                if cur.isUndefined { return cur }
            }
            return cur
        }
    }

    func filter(_ name: String, _ v: JVal, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> JVal {
        switch name {
        case "safe": return v
        case "string": return .string(try toOutputString(v, at: off))
        case "e", "escape", "forceescape":
            var r = ""
            for ch in pyStr(v).unicodeScalars {
                switch ch {
                case "&": r += "&amp;"
                case "<": r += "&lt;"
                case ">": r += "&gt;"
                case "\"": r += "&#34;"
                case "'": r += "&#39;"
                default: r.unicodeScalars.append(ch)
                }
            }
            return .string(r)
        case "trim":
            let a = try bind(pos, kw, ["chars"], name, at: off)
            var chars: String?
            if let c = a[0], case .string(let cs) = c { chars = cs }
            return .string(pyStr(v).pyStrip(chars))
        case "upper": return .string(pyStr(v).uppercased())
        case "lower": return .string(pyStr(v).lowercased())
        case "capitalize": return .string(pyCapitalize(pyStr(v)))
        case "title": return .string(jinjaTitle(pyStr(v)))
        case "length", "count":
            switch v {
            case .undefined: return .int(0)
            case .string(let s): return .int(s.scalarCount)
            case .list(let a), .tuple(let a): return .int(a.count)
            case .dict(let d): return .int(d.count)
            case .namespace(let ns): return .int(ns.attrs.count)
            default: throw JinjaFailure(.runtime, "object of type '\(v.typeName)' has no len()", at: off)
            }
        case "wordcount": return .int(pySplit(pyStr(v), sep: nil, maxsplit: -1, fromRight: false).count)
        case "default", "d":
            let a = try bind(pos, kw, ["default_value", "boolean"], name, at: off)
            let useBool = a[1]?.truthy ?? false
            if v.isUndefined || (useBool && !v.truthy) { return a[0] ?? .string("") }
            return v
        case "first":
            if case .dict(let d) = v { return d.keys.first ?? .undefined(hint: "No first item, sequence was empty.") }
            return try iterate(v, at: off).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            if case .dict(let d) = v { return d.keys.last ?? .undefined(hint: "No last item, sequence was empty.") }
            return try iterate(v, at: off).last ?? .undefined(hint: "No last item, sequence was empty.")
        case "list":
            return .list(try iterate(v, at: off))
        case "items":
            switch v {
            case .undefined: return .list([])
            case .dict(let d):
                try checkNesting(d.values, at: off)
                return .list(zip(d.keys, d.values).map { .tuple([$0, $1]) })
            default: throw JinjaFailure(.runtime, "Can only get item pairs from a mapping.", at: off)
            }
        case "join":
            let a = try bind(pos, kw, ["d", "attribute"], name, at: off)
            var items = try iterate(v, at: off)
            if let attr = a[1] { let g = attrGetter(attr, at: off); items = try items.map(g) }
            let sep = a[0].map(pyStr) ?? ""
            let r = try items.map { try toOutputString($0, at: off) }.joined(separator: sep)
            try checkSize(r.utf8.count, at: off)
            try charge(r.utf8.count, at: off)
            return .string(r)
        case "replace":
            let a = try bind(pos, kw, ["old", "new", "count"], name, at: off)
            let s = pyStr(v)
            let r = pyReplace(s, pyStr(a[0] ?? .string("")), pyStr(a[1] ?? .string("")), count: a[2]?.asInt ?? -1, maxBytes: limits.maxOutputBytes)
            try checkSize(r.utf8.count, at: off)
            try charge(r.utf8.count, at: off)
            return .string(r)
        case "int":
            let a = try bind(pos, kw, ["default", "base"], name, at: off)
            let def = a[0] ?? .int(0)
            switch v {
            case .int, .bool: return .int(v.asInt!)
            case .double(let d):
                guard d.isFinite, abs(d) < 9.2e18 else { return def }
                return .int(Int(d))
            case .string(let s):
                let t = s.pyStrip(nil).replacingOccurrences(of: "_", with: "")
                let base = a[1]?.asInt ?? 10
                if let i = Int(t, radix: base) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return def
            default: return def
            }
        case "float":
            let a = try bind(pos, kw, ["default"], name, at: off)
            let def = a[0] ?? .double(0)
            switch v {
            case .int, .bool, .double: return .double(v.asDouble!)
            case .string(let s):
                if let d = Double(s.pyStrip(nil).replacingOccurrences(of: "_", with: "")) { return .double(d) }
                return def
            default: return def
            }
        case "abs":
            if let i = v.asInt {
                guard i != Int.min else { throw JinjaFailure(.runtime, "integer overflow", at: off) }
                return .int(abs(i))
            }
            if case .double(let d) = v { return .double(abs(d)) }
            throw JinjaFailure(.runtime, "bad operand type for abs(): '\(v.typeName)'", at: off)
        case "round":
            let a = try bind(pos, kw, ["precision", "method"], name, at: off)
            let p = a[0]?.asInt ?? 0
            let method = a[1].map(pyStr) ?? "common"
            guard let d = v.asDouble else { throw JinjaFailure(.runtime, "round() needs a number", at: off) }
            let scale = pow(10.0, Double(p))
            switch method {
            case "common":
                if let i = v.asInt, p >= 0 { return .int(i) }
                return .double((d * scale).rounded(.toNearestOrEven) / scale)
            case "ceil": return .double((d * scale).rounded(.up) / scale)
            case "floor": return .double((d * scale).rounded(.down) / scale)
            default: throw JinjaFailure(.runtime, "method must be common, ceil or floor", at: off)
            }
        case "reverse":
            switch v {
            case .string(let s): return .string(stringFromScalars(s.unicodeScalars.reversed()))
            default: return .list(try iterate(v, at: off).reversed())
            }
        case "sort":
            let a = try bind(pos, kw, ["reverse", "case_sensitive", "attribute"], name, at: off)
            var items = try iterate(v, at: off)
            let key = a[2].map { attrGetter($0, at: off) }
            items = try pySorted(items, reverse: a[0]?.truthy ?? false, caseSensitive: a[1]?.truthy ?? false, key: key, at: off)
            return .list(items)
        case "dictsort":
            let a = try bind(pos, kw, ["case_sensitive", "by", "reverse"], name, at: off)
            guard case .dict(let d) = v else { throw JinjaFailure(.runtime, "dictsort expects a mapping", at: off) }
            let byValue = (a[1].map(pyStr) ?? "key") == "value"
            let pairs: [JVal] = zip(d.keys, d.values).map { .tuple([$0, $1]) }
            let key: (JVal) throws -> JVal = { p in
                guard case .tuple(let kv) = p else { return p }
                return byValue ? kv[1] : kv[0]
            }
            return .list(try pySorted(pairs, reverse: a[2]?.truthy ?? false, caseSensitive: a[0]?.truthy ?? false, key: key, at: off))
        case "unique":
            let a = try bind(pos, kw, ["case_sensitive", "attribute"], name, at: off)
            let cs = a[0]?.truthy ?? false
            let key = a[1].map { attrGetter($0, at: off) }
            var seen: [JVal] = []
            var outItems: [JVal] = []
            for it in try iterate(v, at: off) {
                var k = try key?(it) ?? it
                if !cs, case .string(let s) = k { k = .string(s.lowercased()) }
                try charge(seen.count, at: off)
                if !seen.contains(where: { pyEquals($0, k) }) { seen.append(k); outItems.append(it) }
            }
            return .list(outItems)
        case "min", "max":
            let a = try bind(pos, kw, ["case_sensitive", "attribute"], name, at: off)
            let key = a[1].map { attrGetter($0, at: off) }
            let sorted = try pySorted(try iterate(v, at: off), reverse: name == "max", caseSensitive: a[0]?.truthy ?? false, key: key, at: off)
            return sorted.first ?? .undefined(hint: "No aggregated item, sequence was empty.")
        case "sum":
            let a = try bind(pos, kw, ["attribute", "start"], name, at: off)
            var items = try iterate(v, at: off)
            if let attr = a[0] { let g = attrGetter(attr, at: off); items = try items.map(g) }
            var total = a[1] ?? .int(0)
            for it in items { total = try binary("+", total, it, at: off) }
            return total
        case "indent":
            let a = try bind(pos, kw, ["width", "first", "blank"], name, at: off)
            let indention: String
            if let w = a[0], case .string(let ws) = w { indention = ws } else {
                let n = a[0]?.asInt ?? 4
                try checkSize(n, at: off)
                indention = String(repeating: " ", count: max(0, n))
            }
            let s = pyStr(v) + "\n"
            var r: String
            let lines = s.pySplitLines()
            if a[2]?.truthy ?? false {
                r = lines.joined(separator: "\n" + indention)
            } else {
                r = lines.first ?? ""
                if lines.count > 1 {
                    r += "\n" + lines.dropFirst().map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            if a[1]?.truthy ?? false { r = indention + r }
            try checkSize(r.utf8.count, at: off)
            try charge(r.utf8.count, at: off)
            return .string(r)
        case "attr":
            let a = try bind(pos, kw, ["name"], name, at: off)
            return try getAttr(v, pyStr(a[0] ?? .string("")), at: off)
        case "map":
            let items = try iterate(v, at: off)
            if pos.isEmpty, let attr = kw.first(where: { $0.0 == "attribute" })?.1 {
                let def = kw.first(where: { $0.0 == "default" })?.1
                let g = attrGetter(attr, at: off)
                return .list(try items.map { item in
                    let r = try g(item)
                    if r.isUndefined, let d = def { return d }
                    return r
                })
            }
            guard let fname = pos.first.map(pyStr), JinjaBuiltins.filterNames.contains(fname) else {
                throw JinjaFailure(.unsupported, "map() needs a known filter name or attribute=", at: off)
            }
            let rest = Array(pos.dropFirst())
            return .list(try items.map { try filter(fname, $0, rest, kw, at: off) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            var args = pos
            var getter: ((JVal) throws -> JVal)?
            if byAttr {
                guard !args.isEmpty else { throw JinjaFailure(.runtime, "\(name)() needs an attribute name", at: off) }
                getter = attrGetter(args.removeFirst(), at: off)
            }
            var testName: String?
            if !args.isEmpty { testName = pyStr(args.removeFirst()) }
            if let t = testName, !JinjaBuiltins.testNames.contains(t) {
                throw JinjaFailure(.unsupported, "No test named '\(t)'.", at: off)
            }
            let keep = name.hasPrefix("select")
            var outItems: [JVal] = []
            for it in try iterate(v, at: off) {
                try charge(1, at: off)
                let x = try getter?(it) ?? it
                let ok = try testName.map { try applyTest($0, x, args, kw, at: off) } ?? x.truthy
                if ok == keep { outItems.append(it) }
            }
            return .list(outItems)
        case "tojson":
            let a = try bind(pos, kw, ["ensure_ascii", "indent", "separators", "sort_keys"], name, at: off)
            var indent: String?
            if let iv = a[1] {
                switch iv {
                case .none: indent = nil
                case .string(let s): indent = s
                default:
                    guard let n = iv.asInt else { throw JinjaFailure(.runtime, "indent must be an int or string", at: off) }
                    // Each nesting level repeats the indent; a huge one would allocate before any size check.
                    try checkSize(n.multipliedReportingOverflow(by: 16).overflow ? Int.max : n * 16, at: off)
                    indent = String(repeating: " ", count: max(0, n))
                }
            }
            var itemSep = indent == nil ? ", " : ","
            var keySep = ": "
            if let sv = a[2], !isNone(sv) {
                let parts = try iterate(sv, at: off)
                guard parts.count == 2 else { throw JinjaFailure(.runtime, "separators must be a pair", at: off) }
                itemSep = pyStr(parts[0])
                keySep = pyStr(parts[1])
            }
            var w = JSONWriter(ensureASCII: a[0]?.truthy ?? false, indent: indent, itemSep: itemSep, keySep: keySep,
                               sortKeys: a[3]?.truthy ?? false, limit: limits.maxOutputBytes)
            do {
                try w.write(v, level: 0)
            } catch let f as JinjaFailure {
                throw JinjaFailure(f.kind, f.reason, at: off)
            }
            try charge(w.out.utf8.count, at: off)
            return .string(w.out)
        case "format":
            return .string(try pyPercentFormat(pyStr(v), pos, at: off))
        default:
            throw JinjaFailure(.unsupported, "No filter named '\(name)'.", at: off)
        }
    }

    func pySorted(_ items: [JVal], reverse: Bool, caseSensitive: Bool, key: ((JVal) throws -> JVal)?, at off: Int) throws -> [JVal] {
        var keyed: [(JVal, JVal)] = []
        for it in items {
            var k = try key?(it) ?? it
            if !caseSensitive, case .string(let s) = k { k = .string(s.lowercased()) }
            keyed.append((k, it))
        }
        try charge(items.count * 4, at: off)
        var failure: JinjaFailure?
        // Stable merge sort keeps Python's sort stability for equal keys.
        let sorted = stableSorted(keyed) { x, y in
            if failure != nil { return false }
            let (p, q) = reverse ? (y.0, x.0) : (x.0, y.0)
            guard let r = pyLess(p, q) else {
                failure = JinjaFailure(.runtime, "'<' not supported between instances of '\(p.typeName)' and '\(q.typeName)'", at: off)
                return false
            }
            return r
        }
        if let f = failure { throw f }
        return sorted.map { $0.1 }
    }

    // MARK: tests

    func applyTest(_ name: String, _ v: JVal, _ pos: [JVal], _ kw: [(String, JVal)], at off: Int) throws -> Bool {
        let arg = pos.first ?? kw.first?.1
        func needArg() throws -> JVal {
            guard let a = arg else { throw JinjaFailure(.runtime, "test '\(name)' needs an argument", at: off) }
            return a
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "number": return v.isNumber
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v {
            case .undefined, .string, .list, .tuple, .dict: return true
            default: return false
            }
        case "sequence":
            switch v {
            case .string, .list, .tuple, .dict: return true
            default: return false
            }
        case "callable":
            switch v {
            case .macro, .function, .method: return true
            default: return false
            }
        case "even", "odd":
            guard let i = v.asInt else {
                if v.isUndefined { throw undefinedFailure(v, at: off) }
                throw JinjaFailure(.runtime, "test '\(name)' needs an integer", at: off)
            }
            return (i % 2 == 0) == (name == "even")
        case "divisibleby":
            guard let i = v.asInt, let n = try needArg().asInt else { throw JinjaFailure(.runtime, "divisibleby needs integers", at: off) }
            if n == 0 { throw JinjaFailure(.runtime, "integer division or modulo by zero", at: off) }
            return i % n == 0
        case "eq", "equalto", "==": return pyEquals(v, try needArg())
        case "ne", "!=": return !pyEquals(v, try needArg())
        case "lt", "lessthan", "<": return try compare("<", v, try needArg(), at: off)
        case "le", "<=": return try compare("<=", v, try needArg(), at: off)
        case "gt", "greaterthan", ">": return try compare(">", v, try needArg(), at: off)
        case "ge", ">=": return try compare(">=", v, try needArg(), at: off)
        case "in": return try contains(try needArg(), v, at: off)
        case "sameas":
            let o = try needArg()
            switch (v, o) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.namespace(a), .namespace(b)): return a === b
            default: return false
            }
        case "lower": let s = pyStr(v); return s == s.lowercased()
        case "upper": let s = pyStr(v); return s == s.uppercased()
        case "escaped": return false
        case "filter": return JinjaBuiltins.filterNames.contains(pyStr(v))
        case "test": return JinjaBuiltins.testNames.contains(pyStr(v))
        default: throw JinjaFailure(.unsupported, "No test named '\(name)'.", at: off)
        }
    }

    // MARK: printf-style format filter (%s, %d, %i, %r, %f, %%)

    func pyPercentFormat(_ fmt: String, _ args: [JVal], at off: Int) throws -> String {
        var out = ""
        var it = args.makeIterator()
        var chars = Array(fmt.unicodeScalars)[...]
        while let c = chars.popFirst() {
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            guard let k = chars.popFirst() else { throw JinjaFailure(.runtime, "incomplete format", at: off) }
            if k == "%" { out += "%"; continue }
            guard let a = it.next() else { throw JinjaFailure(.runtime, "not enough arguments for format string", at: off) }
            switch k {
            case "s": out += pyStr(a)
            case "r": out += pyRepr(a)
            case "d", "i":
                guard let d = a.asDouble else { throw JinjaFailure(.runtime, "%d format: a real number is required", at: off) }
                out += String(a.asInt ?? Int(d))
            case "f":
                guard let d = a.asDouble else { throw JinjaFailure(.runtime, "%f format: a real number is required", at: off) }
                out += String(format: "%f", d)
            default: throw JinjaFailure(.unsupported, "format code '%\(k)' is not supported", at: off)
            }
        }
        return out
    }
}

func stableSorted<T>(_ a: [T], by less: (T, T) -> Bool) -> [T] {
    if a.count < 2 { return a }
    let mid = a.count / 2
    let l = stableSorted(Array(a[..<mid]), by: less)
    let r = stableSorted(Array(a[mid...]), by: less)
    var out: [T] = []
    out.reserveCapacity(a.count)
    var i = 0
    var j = 0
    while i < l.count && j < r.count {
        if less(r[j], l[i]) { out.append(r[j]); j += 1 } else { out.append(l[i]); i += 1 }
    }
    out.append(contentsOf: l[i...])
    out.append(contentsOf: r[j...])
    return out
}

// MARK: Python string algorithms on code points

func pySplit(_ s: String, sep: String?, maxsplit: Int, fromRight: Bool) -> [String] {
    let sc = Array(s.unicodeScalars)
    guard let sep = sep else {
        // Runs of whitespace separate; leading/trailing whitespace yields no empty fields.
        var words: [[Unicode.Scalar]] = []
        var cur: [Unicode.Scalar] = []
        var inWord = false
        if fromRight && maxsplit >= 0 {
            var parts: [String] = []
            var end = sc.count
            while end > 0 && JinjaLexer.isPyWhitespace(sc[end - 1]) { end -= 1 }
            var splits = 0
            var i = end
            while i > 0 {
                if JinjaLexer.isPyWhitespace(sc[i - 1]) {
                    if splits == maxsplit { break }
                    parts.append(stringFromScalars(sc[i..<end]))
                    splits += 1
                    while i > 0 && JinjaLexer.isPyWhitespace(sc[i - 1]) { i -= 1 }
                    end = i
                } else {
                    i -= 1
                }
            }
            if end > 0 {
                var st = 0
                if splits == maxsplit { while st < end && JinjaLexer.isPyWhitespace(sc[st]) { st += 1 } }
                parts.append(stringFromScalars(sc[st..<end]))
            }
            return parts.reversed()
        }
        var splits = 0
        var idx = 0
        while idx < sc.count {
            let u = sc[idx]
            if JinjaLexer.isPyWhitespace(u) {
                if inWord {
                    words.append(cur); cur = []; inWord = false; splits += 1
                    if maxsplit >= 0 && splits == maxsplit {
                        var rest = idx
                        while rest < sc.count && JinjaLexer.isPyWhitespace(sc[rest]) { rest += 1 }
                        if rest < sc.count { words.append(Array(sc[rest...])) }
                        return words.map { stringFromScalars($0) }
                    }
                }
            } else {
                cur.append(u); inWord = true
            }
            idx += 1
        }
        if inWord { words.append(cur) }
        return words.map { stringFromScalars($0) }
    }
    let sp = Array(sep.unicodeScalars)
    if sp.isEmpty { return [s] }
    var parts: [String] = []
    if fromRight {
        var end = sc.count
        var i = sc.count - sp.count
        var splits = 0
        while i >= 0 && (maxsplit < 0 || splits < maxsplit) {
            if Array(sc[i..<i + sp.count]) == sp {
                parts.append(stringFromScalars(sc[(i + sp.count)..<end]))
                end = i
                i -= sp.count
                splits += 1
            } else {
                i -= 1
            }
        }
        parts.append(stringFromScalars(sc[0..<end]))
        return parts.reversed()
    }
    var start = 0
    var i = 0
    var splits = 0
    while i + sp.count <= sc.count && (maxsplit < 0 || splits < maxsplit) {
        if sc[i] == sp[0] && Array(sc[i..<i + sp.count]) == sp {
            parts.append(stringFromScalars(sc[start..<i]))
            i += sp.count
            start = i
            splits += 1
        } else {
            i += 1
        }
    }
    parts.append(stringFromScalars(sc[start...]))
    return parts
}

/// Python's str.replace, on UTF-8 bytes (a valid UTF-8 needle only matches at scalar boundaries). Stops once the
/// result passes `maxBytes` (the caller then refuses it), so a hostile chain of replaces cannot build gigabytes.
func pyReplace(_ s: String, _ old: String, _ new: String, count: Int, maxBytes: Int = .max) -> String {
    let sc = Array(s.utf8)
    let o = Array(old.utf8)
    let n = Array(new.utf8)
    var out = [UInt8]()
    out.reserveCapacity(min(sc.count, maxBytes) + 16)
    var done = 0
    if o.isEmpty {
        for b in sc {
            if (b & 0xC0) != 0x80, count < 0 || done < count { out.append(contentsOf: n); done += 1 }
            out.append(b)
            if out.count > maxBytes { break }
        }
        if out.count <= maxBytes, count < 0 || done < count { out.append(contentsOf: n) }
        return String(decoding: out, as: UTF8.self)
    }
    var i = 0
    while i < sc.count {
        if (count < 0 || done < count), i + o.count <= sc.count, sc[i] == o[0], sc[i..<i + o.count].elementsEqual(o) {
            out.append(contentsOf: n)
            i += o.count
            done += 1
        } else {
            out.append(sc[i])
            i += 1
        }
        if out.count > maxBytes { break }
    }
    return String(decoding: out, as: UTF8.self)
}

func pyCount(_ s: String, _ sub: String) -> Int {
    let sc = Array(s.unicodeScalars)
    let b = Array(sub.unicodeScalars)
    if b.isEmpty { return sc.count + 1 }
    var n = 0
    var i = 0
    while i + b.count <= sc.count {
        if Array(sc[i..<i + b.count]) == b { n += 1; i += b.count } else { i += 1 }
    }
    return n
}

func scalarRFind(_ s: String, _ sub: String) -> Int? {
    let a = Array(s.unicodeScalars)
    let b = Array(sub.unicodeScalars)
    if b.count > a.count { return nil }
    var i = a.count - b.count
    while i >= 0 {
        if Array(a[i..<i + b.count]) == b { return i }
        i -= 1
    }
    return nil
}

/// Python str.title(): a cased character is upper-cased when it follows an uncased one.
func pyTitle(_ s: String) -> String {
    var out = ""
    var prevCased = false
    for ch in s {
        if ch.isCased {
            out += prevCased ? ch.lowercased() : ch.uppercased()
            prevCased = true
        } else {
            out.append(ch)
            prevCased = false
        }
    }
    return out
}

func pyCapitalize(_ s: String) -> String {
    guard let f = s.first else { return s }
    return f.uppercased() + s.dropFirst().lowercased()
}

/// jinja2's `title` filter: words start after '-', whitespace or an opening bracket.
func jinjaTitle(_ s: String) -> String {
    var out = ""
    var atStart = true
    for ch in s {
        let isSep = ch == "-" || ch == "(" || ch == "{" || ch == "[" || ch == "<" ||
            ch.unicodeScalars.allSatisfy(JinjaLexer.isPyWhitespace)
        if isSep {
            out.append(ch)
            atStart = true
        } else if atStart {
            out += ch.uppercased()
            atStart = false
        } else {
            out += ch.lowercased()
        }
    }
    return out
}

// MARK: json.dumps

struct JSONWriter {
    let ensureASCII: Bool
    let indent: String?
    let itemSep: String
    let keySep: String
    let sortKeys: Bool
    let limit: Int
    var out = ""

    mutating func check() throws {
        if out.utf8.count > limit { throw JinjaFailure(.limitExceeded, "tojson output larger than \(limit) bytes") }
    }

    mutating func newline(_ level: Int) {
        guard let ind = indent else { return }
        out += "\n" + String(repeating: ind, count: level)
    }

    mutating func write(_ v: JVal, level: Int) throws {
        guard level < 200 else { throw JinjaFailure(.limitExceeded, "tojson nesting too deep") }
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += pyFloatRepr(d) }
        case .string(let s): writeString(s)
        case .list(let a), .tuple(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (i, x) in a.enumerated() {
                if i > 0 { out += itemSep }
                newline(level + 1)
                try write(x, level: level + 1)
                try check()
            }
            newline(level)
            out += "]"
        case .dict(let d):
            if d.count == 0 { out += "{}"; return }
            var pairs: [(String, JVal)] = []
            for (k, x) in zip(d.keys, d.values) {
                let ks: String
                switch k {
                case .string(let s): ks = s
                case .none: ks = "null"
                case .bool(let b): ks = b ? "true" : "false"
                case .int(let i): ks = String(i)
                case .double(let f): ks = pyFloatRepr(f)
                default: throw JinjaFailure(.runtime, "keys must be str, int, float, bool or None, not \(k.typeName)")
                }
                pairs.append((ks, x))
            }
            if sortKeys {
                pairs = stableSorted(pairs) { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) }
            }
            out += "{"
            for (i, (k, x)) in pairs.enumerated() {
                if i > 0 { out += itemSep }
                newline(level + 1)
                writeString(k)
                out += keySep
                try write(x, level: level + 1)
                try check()
            }
            newline(level)
            out += "}"
        case .namespace:
            throw JinjaFailure(.runtime, "Object of type Namespace is not JSON serializable")
        default:
            throw JinjaFailure(.runtime, "Object of type \(v.typeName) is not JSON serializable")
        }
    }

    mutating func writeString(_ s: String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                let v = u.value
                if v < 0x20 || (ensureASCII && v > 0x7E) {
                    if v > 0xFFFF {
                        let x = v - 0x10000
                        out += String(format: "\\u%04x\\u%04x", 0xD800 + (x >> 10), 0xDC00 + (x & 0x3FF))
                    } else {
                        out += String(format: "\\u%04x", v)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

// MARK: strftime (the codes chat templates use; C-locale names)

func pyStrftime(_ fmt: String, _ date: Date, _ tz: TimeZone) -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = tz
    let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                  "November", "December"]
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
    let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0, wd = (c.weekday ?? 1) - 1
    func p2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    var out = ""
    var chars = Array(fmt)[...]
    while let ch = chars.popFirst() {
        guard ch == "%", let k = chars.popFirst() else { out.append(ch); continue }
        switch k {
        case "d": out += p2(day)
        case "e": out += day < 10 ? " \(day)" : "\(day)"
        case "m": out += p2(month)
        case "Y": out += String(year)
        case "y": out += p2(year % 100)
        case "b", "h": out += String(months[month - 1].prefix(3))
        case "B": out += months[month - 1]
        case "a": out += String(days[wd].prefix(3))
        case "A": out += days[wd]
        case "H": out += p2(hour)
        case "I": out += p2(hour % 12 == 0 ? 12 : hour % 12)
        case "M": out += p2(minute)
        case "S": out += p2(second)
        case "p": out += hour < 12 ? "AM" : "PM"
        case "j":
            let doy = cal.ordinality(of: .day, in: .year, for: date) ?? 1
            out += doy < 10 ? "00\(doy)" : doy < 100 ? "0\(doy)" : "\(doy)"
        case "F": out += "\(year)-\(p2(month))-\(p2(day))"
        case "%": out += "%"
        default: out += "%" + String(k)
        }
    }
    return out
}

func isNone(_ v: JVal) -> Bool { if case .none = v { return true }; return false }
