import Foundation

enum JFlow { case normal, breakLoop, continueLoop }

/// Limits that keep an untrusted template from hanging or exhausting memory.
public struct ChatTemplateLimits: Sendable {
    /// Total loop iterations over one render (all loops, nested ones included).
    public var maxLoopIterations: Int = 1_000_000
    /// Size of the rendered text and of any single string value, in UTF-8 bytes.
    public var maxOutputBytes: Int = 10_000_000
    /// Nesting of macro calls (recursion).
    public var maxCallDepth: Int = 64
    /// Units of work (roughly, characters produced or compared) over one render. Real chat templates use
    /// well under 1M; 20M keeps a hostile template under ~1 s (500M let list doubling run for 15 s).
    public var maxWork: Int = 20_000_000

    public init() {}
}

final class JinjaInterpreter {
    let limits: ChatTemplateLimits
    let globals: [String: JVal]
    let now: Date
    let timeZone: TimeZone
    var frames: [JFrame]
    var out = ""
    var iterations = 0
    var work = 0
    var callDepth = 0

    init(globals: [String: JVal], limits: ChatTemplateLimits, now: Date, timeZone: TimeZone) {
        self.globals = globals
        self.limits = limits
        self.now = now
        self.timeZone = timeZone
        self.frames = [JFrame()]
    }

    // MARK: budget

    func charge(_ n: Int, at off: Int?) throws {
        work += max(n, 1)
        if work > limits.maxWork {
            throw JinjaFailure(.limitExceeded, "template exceeded its work budget (\(limits.maxWork) units)", at: off)
        }
    }

    /// Refuses to build a container whose elements already nest `maxValueDepth` deep.
    func checkNesting(_ elements: [JVal], at off: Int?) throws {
        var visited = 0
        for v in elements where valueDepth(v, cap: maxValueDepth, visited: &visited) >= maxValueDepth {
            throw JinjaFailure(.limitExceeded, "values nested deeper than \(maxValueDepth) levels", at: off)
        }
        try charge(visited, at: off)
    }

    func checkSize(_ bytes: Int, at off: Int?) throws {
        if bytes > limits.maxOutputBytes {
            throw JinjaFailure(.limitExceeded, "value or output larger than \(limits.maxOutputBytes) bytes", at: off)
        }
    }

    func emit(_ s: String, at off: Int?) throws {
        try charge(s.utf8.count, at: off)
        out += s
        try checkSize(out.utf8.count, at: off)
    }

    /// Renders nodes into a fresh buffer (macros, block set, caller) and returns the text.
    func capture(_ nodes: [JNode]) throws -> String {
        let saved = out
        out = ""
        defer { out = saved }
        let flow = try exec(nodes)
        if flow != .normal { throw JinjaFailure(.syntax, "break/continue outside of a loop") }
        return out
    }

    // MARK: variables

    func lookup(_ name: String) -> JVal {
        for f in frames.reversed() {
            if let v = f.vars[name] { return v }
        }
        if let v = globals[name] { return v }
        switch name {
        case "range", "namespace", "dict", "raise_exception", "strftime_now": return .function(name)
        default: return .undefined(hint: "'\(name)' is undefined")
        }
    }

    func assign(_ target: JTarget, _ value: JVal, at off: Int) throws {
        switch target {
        case .name(let n):
            frames[frames.count - 1].vars[n] = value
        case .attr(let n, let a):
            guard case .namespace(let ns) = lookup(n) else {
                throw JinjaFailure(.runtime, "cannot assign attribute on non-namespace object", at: off)
            }
            if a.hasPrefix("_") { throw JinjaFailure(.runtime, "namespace attributes cannot start with '_'", at: off) }
            ns.set(a, value)
        case .tuple(let ts):
            let items = try iterate(value, at: off)
            guard items.count == ts.count else {
                throw JinjaFailure(.runtime, items.count > ts.count
                    ? "too many values to unpack (expected \(ts.count))"
                    : "not enough values to unpack (expected \(ts.count), got \(items.count))", at: off)
            }
            for (t, v) in zip(ts, items) { try assign(t, v, at: off) }
        }
    }

    // MARK: statements

    func exec(_ nodes: [JNode]) throws -> JFlow {
        for node in nodes {
            let flow = try exec(node)
            if flow != .normal { return flow }
        }
        return .normal
    }

    func exec(_ node: JNode) throws -> JFlow {
        switch node {
        case .text(let t):
            try emit(t, at: nil)
        case .output(let e):
            let v = try eval(e)
            try emit(try toOutputString(v, at: exprOffset(e)), at: exprOffset(e))
        case .ifNode(let branches, let elseBody):
            for (cond, body) in branches where try eval(cond).truthy {
                return try exec(body)
            }
            if let b = elseBody { return try exec(b) }
        case .forNode(let target, let iterExpr, let filter, let body, let elseBody, let off):
            return try execFor(target, iterExpr, filter, body, elseBody, off)
        case .set(let target, let e, let off):
            try assign(target, try eval(e), at: off)
        case .blockSet(let name, let body, let filters):
            var v = JVal.string(try capture(body))
            for (f, args, off) in filters { v = try applyFilter(f, v, args, at: off) }
            frames[frames.count - 1].vars[name] = v
        case .macro(let name, let params, let body):
            frames[frames.count - 1].vars[name] = .macro(JMacro(name: name, params: params, body: body, closure: frames))
        case .callBlock(let callExpr, let params, let body, let off):
            guard case .call(let fnExpr, let args, _) = callExpr else { break }
            let caller = JMacro(name: "caller", params: params, body: body, closure: frames)
            caller.isCaller = true
            let fn = try eval(fnExpr)
            let (pos, kw) = try evalArgs(args)
            guard case .macro(let m) = fn else { throw JinjaFailure(.runtime, "call block target is not a macro", at: off) }
            let v = try callMacro(m, pos, kw, caller: caller, at: off)
            try emit(pyStr(v), at: off)
        case .with(let assigns, let body):
            let frame = JFrame()
            for (n, e) in assigns { frame.vars[n] = try eval(e) }
            frames.append(frame)
            defer { frames.removeLast() }
            return try exec(body)
        case .filterBlock(let filters, let body):
            var v = JVal.string(try capture(body))
            for (f, args, off) in filters { v = try applyFilter(f, v, args, at: off) }
            try emit(pyStr(v), at: nil)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        case .generation(let body):
            return try exec(body)
        }
        return .normal
    }

    func toOutputString(_ v: JVal, at off: Int?) throws -> String {
        switch v {
        case .method(let r, let n):
            if isUnsafeMethod(r, n) { throw unsafeAccess(r, n, at: off) }
        default: break
        }
        return pyStr(v)
    }

    func execFor(_ target: JTarget, _ iterExpr: JExpr, _ filter: JExpr?, _ body: [JNode], _ elseBody: [JNode]?,
                 _ off: Int) throws -> JFlow {
        var items = try iterate(try eval(iterExpr), at: off)
        if let f = filter {
            var kept: [JVal] = []
            for item in items {
                try tick(off)
                let frame = JFrame()
                frames.append(frame)
                defer { frames.removeLast() }
                try assign(target, item, at: off)
                if try eval(f).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let e = elseBody { return try exec(e) }
            return .normal
        }
        let loop = JLoop(items: items)
        for (idx, item) in items.enumerated() {
            try tick(off)
            loop.index0 = idx
            // jinja2 gives every iteration a fresh scope: `set` inside the body never outlives it.
            let frame = JFrame(["loop": .loop(loop)])
            frames.append(frame)
            defer { frames.removeLast() }
            try assign(target, item, at: off)
            let flow = try exec(body)
            if flow == .breakLoop { break }
        }
        return .normal
    }

    func tick(_ off: Int) throws {
        iterations += 1
        if iterations > limits.maxLoopIterations {
            throw JinjaFailure(.limitExceeded, "more than \(limits.maxLoopIterations) loop iterations", at: off)
        }
        try charge(1, at: off)
    }

    func iterate(_ v: JVal, at off: Int?) throws -> [JVal] {
        switch v {
        case .undefined: return []
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.keys
        case .string(let s):
            try charge(s.utf8.count, at: off)
            return s.unicodeScalars.map { .string(String($0)) }
        default:
            throw JinjaFailure(.runtime, "'\(v.typeName)' object is not iterable", at: off)
        }
    }

    // MARK: macros

    func callMacro(_ m: JMacro, _ pos: [JVal], _ kw: [(String, JVal)], caller: JMacro?, at off: Int) throws -> JVal {
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > limits.maxCallDepth {
            throw JinjaFailure(.limitExceeded, "macro calls nested deeper than \(limits.maxCallDepth)", at: off)
        }
        try tick(off)
        guard pos.count <= m.params.count else {
            throw JinjaFailure(.runtime, "macro '\(m.name)' takes not more than \(m.params.count) argument(s)", at: off)
        }
        let frame = JFrame()
        let savedFrames = frames
        frames = m.closure + [frame]
        defer { frames = savedFrames }
        for (k, _) in kw where !m.params.contains(where: { $0.0 == k }) {
            throw JinjaFailure(.runtime, "macro '\(m.name)' takes no keyword argument '\(k)'", at: off)
        }
        for (i, (pname, defExpr)) in m.params.enumerated() {
            if i < pos.count {
                frame.vars[pname] = pos[i]
            } else if let v = kw.first(where: { $0.0 == pname })?.1 {
                frame.vars[pname] = v
            } else if let d = defExpr {
                frame.vars[pname] = try eval(d)
            } else {
                frame.vars[pname] = .undefined(hint: "parameter '\(pname)' was not provided")
            }
        }
        if let c = caller { frame.vars["caller"] = .macro(c) }
        return .string(try capture(m.body))
    }

    // MARK: expressions

    func exprOffset(_ e: JExpr) -> Int? {
        switch e {
        case .name(_, let o), .attr(_, _, let o), .item(_, _, let o), .slice(_, _, _, _, let o), .call(_, _, let o),
             .filter(_, _, _, let o), .test(_, _, _, _, let o), .neg(_, let o), .pos(_, let o), .binary(_, _, _, let o),
             .compare(_, _, let o), .concat(_, let o):
            return o
        case .not(let x): return exprOffset(x)
        case .and(let x, _), .or(let x, _): return exprOffset(x)
        case .cond(let x, _, _): return exprOffset(x)
        default: return nil
        }
    }

    func undefinedFailure(_ v: JVal, at off: Int?) -> JinjaFailure {
        if case .undefined(let hint) = v { return JinjaFailure(.runtime, hint, at: off) }
        return JinjaFailure(.runtime, "value is undefined", at: off)
    }

    func evalArgs(_ args: JArgs) throws -> ([JVal], [(String, JVal)]) {
        let pos = try args.positional.map { try eval($0) }
        let kw = try args.keyword.map { ($0.0, try eval($0.1)) }
        return (pos, kw)
    }

    func eval(_ e: JExpr) throws -> JVal {
        switch e {
        case .literal(let v): return v
        case .name(let n, _): return lookup(n)
        case .list(let items):
            let vals = try items.map { try eval($0) }
            try checkNesting(vals, at: exprOffset(e))
            return .list(vals)
        case .tuple(let items):
            let vals = try items.map { try eval($0) }
            try checkNesting(vals, at: exprOffset(e))
            return .tuple(vals)
        case .dict(let pairs):
            var d = JDict()
            for (k, v) in pairs {
                let key = try eval(k)
                switch key {
                case .list, .dict, .namespace, .undefined: throw JinjaFailure(.runtime, "unhashable type: '\(key.typeName)'", at: exprOffset(k))
                default: break
                }
                d.set(key, try eval(v))
            }
            try checkNesting(d.values, at: exprOffset(e))
            return .dict(d)
        case .attr(let base, let name, let off):
            return try getAttr(try eval(base), name, at: off)
        case .item(let base, let idx, let off):
            return try getItem(try eval(base), try eval(idx), at: off)
        case .slice(let base, let a, let b, let c, let off):
            let v = try eval(base)
            return try slice(v, try a.map { try eval($0) }, try b.map { try eval($0) }, try c.map { try eval($0) }, at: off)
        case .call(let fnExpr, let args, let off):
            let fn = try eval(fnExpr)
            let (pos, kw) = try evalArgs(args)
            return try call(fn, pos, kw, at: off)
        case .filter(let base, let name, let args, let off):
            return try applyFilter(name, try eval(base), args, at: off)
        case .test(let base, let name, let args, let negated, let off):
            let v = try eval(base)
            let (pos, kw) = try evalArgs(args)
            let r = try applyTest(name, v, pos, kw, at: off)
            return .bool(negated ? !r : r)
        case .neg(let x, let off):
            let v = try eval(x)
            if let i = v.asInt {
                guard i != Int.min else { throw JinjaFailure(.runtime, "integer overflow", at: off) }
                return .int(-i)
            }
            if case .double(let d) = v { return .double(-d) }
            if v.isUndefined { throw undefinedFailure(v, at: off) }
            throw JinjaFailure(.runtime, "bad operand type for unary -: '\(v.typeName)'", at: off)
        case .pos(let x, let off):
            let v = try eval(x)
            if let i = v.asInt { return .int(i) }
            if case .double = v { return v }
            if v.isUndefined { throw undefinedFailure(v, at: off) }
            throw JinjaFailure(.runtime, "bad operand type for unary +: '\(v.typeName)'", at: off)
        case .not(let x): return .bool(!(try eval(x).truthy))
        case .and(let a, let b):
            let l = try eval(a)
            return l.truthy ? try eval(b) : l
        case .or(let a, let b):
            let l = try eval(a)
            return l.truthy ? l : try eval(b)
        case .binary(let op, let a, let b, let off):
            return try binary(op, try eval(a), try eval(b), at: off)
        case .compare(let first, let ops, let off):
            var left = try eval(first)
            for (op, rexpr) in ops {
                let right = try eval(rexpr)
                if !(try compare(op, left, right, at: off)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let items, let off):
            var s = ""
            for it in items {
                s += try toOutputString(try eval(it), at: off)
                try checkSize(s.utf8.count, at: off)
            }
            try charge(s.utf8.count, at: off)
            return .string(s)
        case .cond(let thenE, let condE, let elseE):
            if try eval(condE).truthy { return try eval(thenE) }
            if let e = elseE { return try eval(e) }
            return .undefined(hint: "the inline if-expression on line evaluated to false and no else section was defined")
        }
    }

    // MARK: operators

    func binary(_ op: String, _ a: JVal, _ b: JVal, at off: Int) throws -> JVal {
        if a.isUndefined { throw undefinedFailure(a, at: off) }
        if b.isUndefined { throw undefinedFailure(b, at: off) }
        func typeError() -> JinjaFailure {
            JinjaFailure(.runtime, "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'", at: off)
        }
        func overflow() -> JinjaFailure { JinjaFailure(.runtime, "integer overflow", at: off) }
        switch op {
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)):
                try checkSize(x.utf8.count + y.utf8.count, at: off)
                try charge(x.utf8.count + y.utf8.count, at: off)
                return .string(x + y)
            case let (.list(x), .list(y)):
                try charge(x.count + y.count, at: off)
                return .list(x + y)
            case let (.tuple(x), .tuple(y)):
                try charge(x.count + y.count, at: off)
                return .tuple(x + y)
            default: break
            }
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.addingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            }
            if let x = a.asDouble, let y = b.asDouble { return .double(x + y) }
            throw typeError()
        case "-":
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.subtractingReportingOverflow(y)
                if o { throw overflow() }
                return .int(r)
            }
            if let x = a.asDouble, let y = b.asDouble { return .double(x - y) }
            throw typeError()
        case "*":
            func repeatCount(_ n: Int, unit: Int) throws -> Int {
                let count = max(n, 0)
                let (total, o) = count.multipliedReportingOverflow(by: max(unit, 1))
                if o { throw JinjaFailure(.limitExceeded, "repetition too large", at: off) }
                try checkSize(total, at: off)
                try charge(total, at: off)
                return count
            }
            switch (a, b) {
            case (.string(let s), _) where b.asInt != nil:
                return .string(String(repeating: s, count: try repeatCount(b.asInt!, unit: s.utf8.count)))
            case (_, .string(let s)) where a.asInt != nil:
                return .string(String(repeating: s, count: try repeatCount(a.asInt!, unit: s.utf8.count)))
            case (.list(let l), _) where b.asInt != nil:
                let n = try repeatCount(b.asInt!, unit: l.count * 8)
                return .list(Array([[JVal]](repeating: l, count: n).joined()))
            case (_, .list(let l)) where a.asInt != nil:
                let n = try repeatCount(a.asInt!, unit: l.count * 8)
                return .list(Array([[JVal]](repeating: l, count: n).joined()))
            default: break
            }
            if let x = a.asInt, let y = b.asInt {
                let (r, o) = x.multipliedReportingOverflow(by: y)
                if o { throw overflow() }
                return .int(r)
            }
            if let x = a.asDouble, let y = b.asDouble { return .double(x * y) }
            throw typeError()
        case "/":
            guard let x = a.asDouble, let y = b.asDouble else { throw typeError() }
            if y == 0 { throw JinjaFailure(.runtime, "division by zero", at: off) }
            return .double(x / y)
        case "//":
            if let x = a.asInt, let y = b.asInt {
                if y == 0 { throw JinjaFailure(.runtime, "integer division or modulo by zero", at: off) }
                if x == Int.min && y == -1 { throw overflow() }
                var q = x / y
                if (x % y != 0) && ((x < 0) != (y < 0)) { q -= 1 }
                return .int(q)
            }
            guard let x = a.asDouble, let y = b.asDouble else { throw typeError() }
            if y == 0 { throw JinjaFailure(.runtime, "float floor division by zero", at: off) }
            return .double((x / y).rounded(.down))
        case "%":
            if case .string = a { throw JinjaFailure(.unsupported, "printf-style '%' string formatting is not supported", at: off) }
            if let x = a.asInt, let y = b.asInt {
                if y == 0 { throw JinjaFailure(.runtime, "integer division or modulo by zero", at: off) }
                if y == -1 { return .int(0) }
                var r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { r += y }
                return .int(r)
            }
            guard let x = a.asDouble, let y = b.asDouble else { throw typeError() }
            if y == 0 { throw JinjaFailure(.runtime, "float modulo", at: off) }
            var r = fmod(x, y)
            if r != 0 && ((r < 0) != (y < 0)) { r += y }
            return .double(r)
        case "**":
            if let x = a.asInt, let y = b.asInt, y >= 0 {
                var result = 1
                var base = x
                var e = y
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (bb, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow() }
                        base = bb
                    }
                }
                return .int(result)
            }
            guard let x = a.asDouble, let y = b.asDouble else { throw typeError() }
            return .double(pow(x, y))
        default:
            throw typeError()
        }
    }

    func compare(_ op: String, _ a: JVal, _ b: JVal, at off: Int) throws -> Bool {
        switch op {
        case "==":
            try chargeCompare(a, b, at: off)
            return pyEquals(a, b)
        case "!=":
            try chargeCompare(a, b, at: off)
            return !pyEquals(a, b)
        case "in": return try contains(b, a, at: off)
        case "notin": return !(try contains(b, a, at: off))
        default:
            if a.isUndefined { throw undefinedFailure(a, at: off) }
            if b.isUndefined { throw undefinedFailure(b, at: off) }
            try chargeCompare(a, b, at: off)
            func lt(_ x: JVal, _ y: JVal) throws -> Bool {
                guard let r = pyLess(x, y) else {
                    throw JinjaFailure(.runtime, "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", at: off)
                }
                return r
            }
            switch op {
            case "<": return try lt(a, b)
            case ">": return try lt(b, a)
            case "<=": return try !lt(b, a)
            default: return try !lt(a, b)
            }
        }
    }

    func chargeCompare(_ a: JVal, _ b: JVal, at off: Int) throws {
        if case .string(let x) = a, case .string(let y) = b { try charge(min(x.utf8.count, y.utf8.count), at: off) }
    }

    func contains(_ container: JVal, _ item: JVal, at off: Int) throws -> Bool {
        switch container {
        case .undefined: return false
        case .string(let s):
            guard case .string(let sub) = item else {
                throw JinjaFailure(.runtime, "'in <string>' requires string as left operand, not \(item.typeName)", at: off)
            }
            try charge(s.utf8.count, at: off)
            if sub.isEmpty { return true }
            return scalarFind(s, sub) != nil
        case .list(let a), .tuple(let a):
            try charge(a.count, at: off)
            return a.contains { pyEquals($0, item) }
        case .dict(let d):
            return d.index(of: item) != nil
        default:
            throw JinjaFailure(.runtime, "argument of type '\(container.typeName)' is not iterable", at: off)
        }
    }

    // MARK: attribute and item access (jinja2 sandbox semantics)

    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy", "pop", "popitem", "setdefault", "update", "clear"]
    static let strMethods: Set<String> = ["strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
                                          "lower", "title", "capitalize", "replace", "join", "find", "rfind", "count",
                                          "splitlines", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower",
                                          "swapcase", "casefold", "removeprefix", "removesuffix", "index", "rindex", "zfill",
                                          "center", "ljust", "rjust", "partition", "rpartition", "isnumeric", "isdecimal",
                                          "istitle", "format", "encode"]
    static let listMethods: Set<String> = ["append", "pop", "insert", "extend", "remove", "reverse", "sort", "clear", "index", "count", "copy"]

    func isUnsafeMethod(_ r: JVal, _ n: String) -> Bool {
        switch r {
        case .dict: return ["pop", "popitem", "setdefault", "update", "clear"].contains(n)
        case .list: return ["append", "pop", "insert", "extend", "remove", "reverse", "sort", "clear"].contains(n)
        default: return false
        }
    }

    func unsafeAccess(_ r: JVal, _ n: String, at off: Int?) -> JinjaFailure {
        JinjaFailure(.runtime, "access to attribute '\(n)' of '\(r.typeName)' object is unsafe.", at: off)
    }

    func getAttr(_ v: JVal, _ name: String, at off: Int) throws -> JVal {
        let missing = JVal.undefined(hint: "'\(v.typeName) object' has no attribute '\(name)'")
        switch v {
        case .undefined: throw undefinedFailure(v, at: off)
        case .dict(let d):
            if JinjaInterpreter.dictMethods.contains(name) { return .method(v, name) }
            return d.get(name) ?? missing
        case .string:
            return JinjaInterpreter.strMethods.contains(name) ? .method(v, name) : missing
        case .list, .tuple:
            if case .tuple = v, !["index", "count"].contains(name) { return missing }
            return JinjaInterpreter.listMethods.contains(name) ? .method(v, name) : missing
        case .namespace(let ns):
            return ns.get(name) ?? missing
        case .loop(let l):
            return loopAttr(l, name) ?? missing
        case .function(let f) where f == "dict" && name == "fromkeys":
            return .method(v, name)
        default:
            return missing
        }
    }

    func loopAttr(_ l: JLoop, _ name: String) -> JVal? {
        let n = l.items.count
        let i = l.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? l.items[i - 1] : .undefined(hint: "there is no previous item")
        case "nextitem": return i + 1 < n ? l.items[i + 1] : .undefined(hint: "there is no next item")
        case "cycle": return .method(.loop(l), "cycle")
        default: return nil
        }
    }

    func getItem(_ v: JVal, _ key: JVal, at off: Int) throws -> JVal {
        switch v {
        case .undefined: throw undefinedFailure(v, at: off)
        case .dict(let d):
            if let x = d.get(key) { return x }
        case .list(let a), .tuple(let a):
            if let i = key.asInt {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined(hint: "'\(v.typeName) object' has no element \(i)")
            }
        case .string(let s):
            if let i = key.asInt {
                try charge(s.utf8.count, at: off)
                let sc = Array(s.unicodeScalars)
                let j = i < 0 ? i + sc.count : i
                if j >= 0 && j < sc.count { return .string(String(sc[j])) }
                return .undefined(hint: "'str object' has no element \(i)")
            }
        case .loop(let l):
            if case .string(let n) = key, let x = loopAttr(l, n) { return x }
        case .namespace(let ns):
            if case .string(let n) = key, let x = ns.get(n) { return x }
        default: break
        }
        if case .string(let n) = key { return try getAttr(v, n, at: off) }
        return .undefined(hint: "'\(v.typeName) object' has no element \(pyRepr(key))")
    }

    func slice(_ v: JVal, _ a: JVal?, _ b: JVal?, _ c: JVal?, at off: Int) throws -> JVal {
        if v.isUndefined { throw undefinedFailure(v, at: off) }
        func idx(_ x: JVal?) throws -> Int? {
            guard let x = x else { return nil }
            if case .none = x { return nil }
            guard let i = x.asInt else { throw JinjaFailure(.runtime, "slice indices must be integers or None", at: off) }
            return i
        }
        let step = try idx(c) ?? 1
        if step == 0 { throw JinjaFailure(.runtime, "slice step cannot be zero", at: off) }
        func indices(_ n: Int) throws -> [Int] {
            var start = try idx(a)
            var stop = try idx(b)
            if step > 0 {
                var s = start ?? 0
                if s < 0 { s = max(s + n, 0) } else { s = min(s, n) }
                var e = stop ?? n
                if e < 0 { e = max(e + n, 0) } else { e = min(e, n) }
                start = s; stop = e
                return s < e ? Array(stride(from: s, to: e, by: step)) : []
            } else {
                var s = start ?? (n - 1)
                if s < 0 { s += n; if s < 0 { s = -1 } } else if s >= n { s = n - 1 }
                var e = stop ?? -1
                if stop != nil { if e < 0 { e += n; if e < 0 { e = -1 } } else if e >= n { e = n - 1 } }
                return s > e ? Array(stride(from: s, to: e, by: step)) : []
            }
        }
        switch v {
        case .list(let arr):
            try charge(arr.count, at: off)
            return .list(try indices(arr.count).map { arr[$0] })
        case .tuple(let arr):
            try charge(arr.count, at: off)
            return .tuple(try indices(arr.count).map { arr[$0] })
        case .string(let s):
            try charge(s.utf8.count, at: off)
            let sc = Array(s.unicodeScalars)
            return .string(stringFromScalars(try indices(sc.count).map { sc[$0] }))
        default:
            return .undefined(hint: "'\(v.typeName)' object is not subscriptable")
        }
    }
}

/// Index (in scalars) of the first occurrence of `sub` in `s`, or nil.
func scalarFind(_ s: String, _ sub: String, from: Int = 0) -> Int? {
    let a = Array(s.unicodeScalars)
    let b = Array(sub.unicodeScalars)
    if b.isEmpty { return min(from, a.count) }
    guard a.count >= b.count else { return nil }
    var i = max(from, 0)
    while i + b.count <= a.count {
        if a[i] == b[0] && Array(a[i..<i + b.count]) == b { return i }
        i += 1
    }
    return nil
}
