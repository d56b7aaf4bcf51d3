import Foundation

final class JArgs {
    var positional: [JExpr]
    var keyword: [(String, JExpr)]
    init(_ positional: [JExpr] = [], _ keyword: [(String, JExpr)] = []) {
        self.positional = positional
        self.keyword = keyword
    }
}

indirect enum JExpr {
    case literal(JVal)
    case name(String, Int)
    case list([JExpr])
    case tuple([JExpr])
    case dict([(JExpr, JExpr)])
    case attr(JExpr, String, Int)
    case item(JExpr, JExpr, Int)
    case slice(JExpr, JExpr?, JExpr?, JExpr?, Int)
    case call(JExpr, JArgs, Int)
    case filter(JExpr, String, JArgs, Int)
    case test(JExpr, String, JArgs, Bool, Int)
    case neg(JExpr, Int)
    case pos(JExpr, Int)
    case not(JExpr)
    case and(JExpr, JExpr)
    case or(JExpr, JExpr)
    case binary(String, JExpr, JExpr, Int)
    case compare(JExpr, [(String, JExpr)], Int)
    case concat([JExpr], Int)
    case cond(JExpr, JExpr, JExpr?)
}

indirect enum JTarget {
    case name(String)
    case tuple([JTarget])
    case attr(String, String)
}

indirect enum JNode {
    case text(String)
    case output(JExpr)
    case ifNode([(JExpr, [JNode])], [JNode]?)
    case forNode(JTarget, JExpr, JExpr?, [JNode], [JNode]?, Int)
    case set(JTarget, JExpr, Int)
    case blockSet(String, [JNode], [(String, JArgs, Int)])
    case macro(String, [(String, JExpr?)], [JNode])
    case callBlock(JExpr, [(String, JExpr?)], [JNode], Int)
    case with([(String, JExpr)], [JNode])
    case filterBlock([(String, JArgs, Int)], [JNode])
    case breakLoop(Int)
    case continueLoop(Int)
    case generation([JNode])
}

/// Recursive-descent parser following jinja2's grammar and operator precedence
/// (filters and `is` tests bind tighter than arithmetic; `not` looser than comparisons).
struct JinjaParser {
    var tokens: [JToken]
    var i = 0
    var depth = 0
    static let maxDepth = 200

    init(tokens: [JToken]) { self.tokens = tokens }

    var cur: JToken { tokens[i] }

    mutating func advance() -> JToken {
        let t = tokens[i]
        if i < tokens.count - 1 { i += 1 }
        return t
    }

    func fail(_ msg: String, _ off: Int? = nil) -> JinjaFailure {
        JinjaFailure(.syntax, msg, at: off ?? tokens[i].offset)
    }

    func describe(_ k: JTokenKind) -> String {
        switch k {
        case .text: return "template data"
        case .varBegin: return "'{{'"
        case .varEnd: return "end of print statement"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block"
        case .name(let n): return "'\(n)'"
        case .string: return "string"
        case .integer, .float: return "number"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    func isOp(_ o: String) -> Bool { if case .op(let x) = cur.kind { return x == o }; return false }
    func isName(_ n: String) -> Bool { if case .name(let x) = cur.kind { return x == n }; return false }

    mutating func expectOp(_ o: String) throws {
        guard isOp(o) else { throw fail("expected '\(o)', got \(describe(cur.kind))") }
        _ = advance()
    }

    mutating func expectName() throws -> String {
        guard case .name(let n) = cur.kind else { throw fail("expected a name, got \(describe(cur.kind))") }
        _ = advance()
        return n
    }

    mutating func expectBlockEnd() throws {
        guard case .blockEnd = cur.kind else { throw fail("expected end of statement block, got \(describe(cur.kind))") }
        _ = advance()
    }

    mutating func enter() throws {
        depth += 1
        if depth > JinjaParser.maxDepth {
            throw JinjaFailure(.limitExceeded, "template nesting deeper than \(JinjaParser.maxDepth)", at: cur.offset)
        }
    }

    // MARK: statements

    mutating func parseTemplate() throws -> [JNode] {
        let (body, end) = try parseBody(until: [])
        if let end = end { throw fail("unexpected '\(end)'") }
        return body
    }

    /// Parses nodes until a `{% <one of ends> %}` tag; returns the tag name with the stream positioned after it.
    mutating func parseBody(until ends: Set<String>) throws -> ([JNode], String?) {
        try enter()
        defer { depth -= 1 }
        var nodes: [JNode] = []
        while true {
            switch cur.kind {
            case .eof:
                if !ends.isEmpty {
                    throw fail("unexpected end of template; expected one of \(ends.sorted().joined(separator: ", "))")
                }
                return (nodes, nil)
            case .text(let t):
                _ = advance()
                nodes.append(.text(t))
            case .varBegin:
                _ = advance()
                let e = try parseTuple()
                guard case .varEnd = cur.kind else { throw fail("expected end of print statement, got \(describe(cur.kind))") }
                _ = advance()
                nodes.append(.output(e))
            case .blockBegin:
                let tagOff = cur.offset
                _ = advance()
                guard case .name(let tag) = cur.kind else { throw fail("expected a tag name") }
                if ends.contains(tag) {
                    _ = advance()
                    return (nodes, tag)
                }
                nodes.append(try parseStatement(tag, tagOff))
            default:
                throw fail("unexpected \(describe(cur.kind))")
            }
        }
    }

    mutating func parseStatement(_ tag: String, _ off: Int) throws -> JNode {
        _ = advance()
        switch tag {
        case "if": return try parseIf()
        case "for": return try parseFor(off)
        case "set": return try parseSet(off)
        case "macro": return try parseMacro()
        case "call": return try parseCallBlock(off)
        case "with": return try parseWith()
        case "filter":
            let filters = try parseFilterChain()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return .filterBlock(filters, body)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .generation(body)
        case "break":
            try expectBlockEnd()
            return .breakLoop(off)
        case "continue":
            try expectBlockEnd()
            return .continueLoop(off)
        case "include", "import", "from", "extends", "block":
            throw JinjaFailure(.unsupported, "tag '\(tag)' is not supported in chat templates", at: off)
        default:
            throw JinjaFailure(.syntax, "Encountered unknown tag '\(tag)'.", at: off)
        }
    }

    mutating func parseIf() throws -> JNode {
        var branches: [(JExpr, [JNode])] = []
        var cond = try parseTuple()
        try expectBlockEnd()
        while true {
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((cond, body))
            if end == "elif" {
                cond = try parseTuple()
                try expectBlockEnd()
                continue
            }
            if end == "else" {
                try expectBlockEnd()
                let (elseBody, _) = try parseBody(until: ["endif"])
                try expectBlockEnd()
                return .ifNode(branches, elseBody)
            }
            try expectBlockEnd()
            return .ifNode(branches, nil)
        }
    }

    mutating func parseAssignTarget(allowAttr: Bool) throws -> JTarget {
        var items: [JTarget] = []
        var sawComma = false
        repeat {
            if isOp("(") {
                _ = advance()
                let t = try parseAssignTarget(allowAttr: false)
                try expectOp(")")
                items.append(t)
            } else {
                let n = try expectName()
                if allowAttr && isOp(".") {
                    _ = advance()
                    let a = try expectName()
                    return .attr(n, a)
                }
                items.append(.name(n))
            }
            if isOp(",") { _ = advance(); sawComma = true } else { break }
        } while !isName("in") && !isOp("=") && !isOp(")")
        return (items.count == 1 && !sawComma) ? items[0] : .tuple(items)
    }

    mutating func parseFor(_ off: Int) throws -> JNode {
        let target = try parseAssignTarget(allowAttr: false)
        guard isName("in") else { throw fail("expected 'in'") }
        _ = advance()
        let iter = try parseTuple(noCondExpr: true)
        var filter: JExpr?
        if isName("if") {
            _ = advance()
            filter = try parseExpression()
        }
        if isName("recursive") { throw JinjaFailure(.unsupported, "recursive loops are not supported", at: cur.offset) }
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["else", "endfor"])
        var elseBody: [JNode]?
        if end == "else" {
            try expectBlockEnd()
            elseBody = try parseBody(until: ["endfor"]).0
        }
        try expectBlockEnd()
        return .forNode(target, iter, filter, body, elseBody, off)
    }

    mutating func parseSet(_ off: Int) throws -> JNode {
        let target = try parseAssignTarget(allowAttr: true)
        if isOp("=") {
            _ = advance()
            let e = try parseTuple()
            try expectBlockEnd()
            return .set(target, e, off)
        }
        guard case .name(let n) = target else { throw fail("expected '='") }
        var filters: [(String, JArgs, Int)] = []
        if isOp("|") { _ = advance(); filters = try parseFilterChain() }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .blockSet(n, body, filters)
    }

    mutating func parseFilterChain() throws -> [(String, JArgs, Int)] {
        var out: [(String, JArgs, Int)] = []
        repeat {
            let off = cur.offset
            let name = try parseDottedName()
            guard JinjaBuiltins.filterNames.contains(name) else {
                throw JinjaFailure(.unsupported, "No filter named '\(name)'.", at: off)
            }
            let args = isOp("(") ? try parseCallArgs() : JArgs()
            out.append((name, args, off))
            if isOp("|") { _ = advance() } else { break }
        } while true
        return out
    }

    mutating func parseSignature() throws -> [(String, JExpr?)] {
        var params: [(String, JExpr?)] = []
        try expectOp("(")
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let n = try expectName()
            if isOp("=") {
                _ = advance()
                params.append((n, try parseExpression()))
            } else {
                params.append((n, nil))
            }
        }
        _ = advance()
        return params
    }

    mutating func parseMacro() throws -> JNode {
        let name = try expectName()
        let params = try parseSignature()
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endmacro"])
        if case .name = cur.kind { _ = advance() }
        try expectBlockEnd()
        return .macro(name, params, body)
    }

    mutating func parseCallBlock(_ off: Int) throws -> JNode {
        let params = isOp("(") ? try parseSignature() : []
        let callExpr = try parseExpression()
        guard case .call = callExpr else { throw fail("expected call") }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endcall"])
        try expectBlockEnd()
        return .callBlock(callExpr, params, body, off)
    }

    mutating func parseWith() throws -> JNode {
        var assigns: [(String, JExpr)] = []
        while case .name = cur.kind {
            if !assigns.isEmpty { try expectOp(",") }
            let n = try expectName()
            try expectOp("=")
            assigns.append((n, try parseExpression()))
            if isOp(",") { _ = advance() }
        }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endwith"])
        try expectBlockEnd()
        return .with(assigns, body)
    }

    // MARK: expressions

    /// A bare comma-separated list becomes a tuple (`{% set a, b = 1, 2 %}`, `{{ 1, 2 }}`).
    mutating func parseTuple(noCondExpr: Bool = false) throws -> JExpr {
        let off = cur.offset
        var items: [JExpr] = []
        var comma = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                _ = advance()
                comma = true
            }
            if case .blockEnd = cur.kind { break }
            if case .varEnd = cur.kind { break }
            if isName("if") || isName("recursive") { break }
            items.append(noCondExpr ? try parseOr() : try parseExpression())
        }
        if items.isEmpty { throw fail("expected an expression", off) }
        return (items.count == 1 && !comma) ? items[0] : .tuple(items)
    }

    mutating func parseExpression() throws -> JExpr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while isName("if") {
            _ = advance()
            let cond = try parseOr()
            var elseE: JExpr?
            if isName("else") {
                _ = advance()
                elseE = try parseExpression()
            }
            e = .cond(e, cond, elseE)
        }
        return e
    }

    mutating func parseOr() throws -> JExpr {
        var l = try parseAnd()
        while isName("or") { _ = advance(); l = .or(l, try parseAnd()) }
        return l
    }

    mutating func parseAnd() throws -> JExpr {
        var l = try parseNot()
        while isName("and") { _ = advance(); l = .and(l, try parseNot()) }
        return l
    }

    mutating func parseNot() throws -> JExpr {
        if isName("not") {
            _ = advance()
            try enter()
            defer { depth -= 1 }
            return .not(try parseNot())
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JExpr {
        let off = cur.offset
        let first = try parseMath1()
        var ops: [(String, JExpr)] = []
        while true {
            if case .op(let o) = cur.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                _ = advance()
                ops.append((o, try parseMath1()))
            } else if isName("in") {
                _ = advance()
                ops.append(("in", try parseMath1()))
            } else if isName("not"), i + 1 < tokens.count, case .name("in") = tokens[i + 1].kind {
                _ = advance(); _ = advance()
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops, off)
    }

    mutating func parseMath1() throws -> JExpr {
        var l = try parseConcat()
        while case .op(let o) = cur.kind, o == "+" || o == "-" {
            let off = cur.offset
            _ = advance()
            l = .binary(o, l, try parseConcat(), off)
        }
        return l
    }

    mutating func parseConcat() throws -> JExpr {
        let off = cur.offset
        var items = [try parseMath2()]
        while isOp("~") { _ = advance(); items.append(try parseMath2()) }
        return items.count == 1 ? items[0] : .concat(items, off)
    }

    mutating func parseMath2() throws -> JExpr {
        var l = try parsePow()
        while case .op(let o) = cur.kind, ["*", "/", "//", "%"].contains(o) {
            let off = cur.offset
            _ = advance()
            l = .binary(o, l, try parsePow(), off)
        }
        return l
    }

    mutating func parsePow() throws -> JExpr {
        var l = try parseUnary(withFilter: true)
        while isOp("**") {
            let off = cur.offset
            _ = advance()
            l = .binary("**", l, try parseUnary(withFilter: true), off)
        }
        return l
    }

    mutating func parseUnary(withFilter: Bool) throws -> JExpr {
        try enter()
        defer { depth -= 1 }
        let off = cur.offset
        var node: JExpr
        if isOp("-") {
            _ = advance()
            node = .neg(try parseUnary(withFilter: false), off)
        } else if isOp("+") {
            _ = advance()
            node = .pos(try parseUnary(withFilter: false), off)
        } else {
            node = try parsePostfix(try parsePrimary(), startOffset: off)
        }
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    mutating func parsePrimary() throws -> JExpr {
        let t = cur
        switch t.kind {
        case .name(let n):
            _ = advance()
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n, t.offset)
            }
        case .string(var s):
            _ = advance()
            while case .string(let more) = cur.kind { s += more; _ = advance() }
            return .literal(.string(s))
        case .integer(let v):
            _ = advance()
            return .literal(.int(v))
        case .float(let v):
            _ = advance()
            return .literal(.double(v))
        case .op("("):
            _ = advance()
            if isOp(")") { _ = advance(); return .tuple([]) }
            let first = try parseExpression()
            if isOp(")") { _ = advance(); return first }
            var items = [first]
            while isOp(",") {
                _ = advance()
                if isOp(")") { break }
                items.append(try parseExpression())
            }
            try expectOp(")")
            return .tuple(items)
        case .op("["):
            _ = advance()
            var items: [JExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            _ = advance()
            return .list(items)
        case .op("{"):
            _ = advance()
            var items: [(JExpr, JExpr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            _ = advance()
            return .dict(items)
        default:
            throw fail("unexpected \(describe(t.kind))")
        }
    }

    /// `startOffset` is where the primary began; calls report it so errors point at the callee's name.
    mutating func parsePostfix(_ start: JExpr, startOffset: Int) throws -> JExpr {
        var node = start
        while true {
            let off = cur.offset
            if isOp(".") {
                _ = advance()
                switch cur.kind {
                case .name(let n):
                    _ = advance()
                    node = .attr(node, n, off)
                case .integer(let v):
                    _ = advance()
                    node = .item(node, .literal(.int(v)), off)
                default:
                    throw fail("expected name or number after '.'")
                }
            } else if isOp("[") {
                _ = advance()
                node = try parseSubscript(node, off)
            } else if isOp("(") {
                node = .call(node, try parseCallArgs(), startOffset)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ base: JExpr, _ off: Int) throws -> JExpr {
        var parts: [JExpr?] = []
        var isSlice = false
        var current: JExpr? = nil
        while !isOp("]") {
            if isOp(":") {
                _ = advance()
                isSlice = true
                parts.append(current)
                current = nil
                continue
            }
            if current != nil { throw fail("expected ']'") }
            current = try parseExpression()
            if isOp(",") { throw JinjaFailure(.unsupported, "tuple subscripts are not supported", at: cur.offset) }
        }
        _ = advance()
        parts.append(current)
        if !isSlice {
            guard let idx = parts[0] else { throw fail("expected subscript expression", off) }
            return .item(base, idx, off)
        }
        guard parts.count <= 3 else { throw fail("too many ':' in slice", off) }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, parts[0], parts[1], parts[2], off)
    }

    mutating func parseCallArgs() throws -> JArgs {
        try expectOp("(")
        let args = JArgs()
        while !isOp(")") {
            if !(args.positional.isEmpty && args.keyword.isEmpty) { try expectOp(",") }
            if isOp(")") { break }
            if isOp("*") || isOp("**") { throw JinjaFailure(.unsupported, "*args/**kwargs in calls are not supported", at: cur.offset) }
            if case .name(let n) = cur.kind, i + 1 < tokens.count, case .op("=") = tokens[i + 1].kind {
                _ = advance(); _ = advance()
                args.keyword.append((n, try parseExpression()))
            } else {
                if !args.keyword.isEmpty { throw fail("positional argument after keyword argument") }
                args.positional.append(try parseExpression())
            }
        }
        _ = advance()
        return args
    }

    mutating func parseDottedName() throws -> String {
        var name = try expectName()
        while isOp("."), i + 1 < tokens.count, case .name(let more) = tokens[i + 1].kind {
            _ = advance(); _ = advance()
            name += "." + more
        }
        return name
    }

    mutating func parseFilterExpr(_ start: JExpr) throws -> JExpr {
        var node = start
        while true {
            if isOp("|") {
                _ = advance()
                let off = cur.offset
                let name = try parseDottedName()
                guard JinjaBuiltins.filterNames.contains(name) else {
                    throw JinjaFailure(.unsupported, "No filter named '\(name)'.", at: off)
                }
                let args = isOp("(") ? try parseCallArgs() : JArgs()
                node = .filter(node, name, args, off)
            } else if isName("is") {
                let off = cur.offset
                _ = advance()
                var negated = false
                if isName("not") { _ = advance(); negated = true }
                let name = try parseDottedName()
                guard JinjaBuiltins.testNames.contains(name) else {
                    throw JinjaFailure(.unsupported, "No test named '\(name)'.", at: off)
                }
                var args = JArgs()
                if isOp("(") {
                    args = try parseCallArgs()
                } else {
                    var takesArg = false
                    switch cur.kind {
                    case .name(let n): takesArg = !["else", "or", "and", "is", "if", "in", "not"].contains(n)
                    case .string, .integer, .float: takesArg = true
                    case .op(let o): takesArg = o == "[" || o == "{"
                    default: break
                    }
                    if takesArg { let o = cur.offset; args = JArgs([try parsePostfix(try parsePrimary(), startOffset: o)]) }
                }
                node = .test(node, name, args, negated, off)
            } else if isOp("(") {
                node = .call(node, try parseCallArgs(), cur.offset)
            } else {
                return node
            }
        }
    }
}
