import Foundation

/// One turn of a conversation, as transformers passes it to a template: `{"role": ..., "content": ...}`.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A model's Jinja chat template, rendered the way transformers' `apply_chat_template(..., tokenize=False)` does:
/// jinja2's ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop controls, transformers'
/// `tojson`, `raise_exception` and `strftime_now`, and the variables `messages`, `tools` (None),
/// `documents` (None), `add_generation_prompt`, the special tokens and any extra keyword arguments.
///
/// The template is untrusted code: it is interpreted by a small evaluator with no host access, and every
/// render is bounded by `ChatTemplateLimits`. The parsed template is immutable, so one instance may be
/// rendered from several threads at once.
///
/// Not supported (a template using them fails with `.unsupported`/`.syntax`, never renders differently):
/// include/import/extends/block, recursive loops, `loop.changed`, `*args` calls, printf-style `%` on strings
/// and `str.format`, filters outside the list in `JinjaBuiltins`. Integers are 64-bit (overflow is an error,
/// Python would grow them). `\r\n` is normalised to `\n` before trim_blocks applies.
public final class ChatTemplate: @unchecked Sendable {
    public let name: String
    public let source: String
    public let limits: ChatTemplateLimits
    let nodes: [JNode]
    let normalizedSource: [UInt8]

    /// ChatML without a default system prompt: the template transformers used to apply when a tokenizer had none
    /// (its old `default_chat_template`). Use it only for models that ship no template; say so to the user,
    /// since a model not trained on ChatML will see an unfamiliar prompt format.
    public static let fallbackChatMLSource =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// The ChatML fallback template (see `fallbackChatMLSource`), named "fallback ChatML template".
    public static let fallbackChatML: ChatTemplate = {
        // The source is a constant known to parse; a failure here is a programming error caught by the tests.
        guard let t = try? ChatTemplate(source: fallbackChatMLSource, name: "fallback ChatML template") else {
            fatalError("built-in ChatML template failed to parse")
        }
        return t
    }()

    /// Parses the template; syntax errors, unknown filters/tests and unsupported tags are reported here.
    public init(source: String, name: String = "chat template", limits: ChatTemplateLimits = ChatTemplateLimits()) throws {
        self.name = name
        self.source = source
        self.limits = limits
        var lexer = JinjaLexer(source: source)
        normalizedSource = lexer.src
        guard source.utf8.count <= limits.maxOutputBytes else {
            throw ChatTemplateError(kind: .limitExceeded, templateName: name, line: 0, column: 0,
                                    reason: "template source larger than \(limits.maxOutputBytes) bytes")
        }
        do {
            let tokens = try lexer.tokenize()
            var parser = JinjaParser(tokens: tokens)
            nodes = try parser.parseTemplate()
        } catch let f as JinjaFailure {
            throw ChatTemplate.wrap(f, name: name, src: lexer.src)
        }
    }

    static func wrap(_ f: JinjaFailure, name: String, src: [UInt8]) -> ChatTemplateError {
        var line = 0
        var col = 0
        if let off = f.offset { (line, col) = lineColumn(in: src, offset: off) }
        return ChatTemplateError(kind: f.kind, templateName: name, line: line, column: col, reason: f.reason)
    }

    /// Renders a conversation of plain role/content messages.
    ///
    /// - Parameters:
    ///   - bosToken, eosToken: passed as `bos_token` / `eos_token` when non-nil (transformers passes the
    ///     tokenizer's special tokens that are set); `extra` may add `unk_token`, `pad_token`, `date_string`,
    ///     `tools`, ... and overrides anything of the same name.
    ///   - now, timeZone: what `strftime_now` formats (transformers uses the local wall clock).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current) throws -> String
    {
        var special: [String: String] = [:]
        if let b = bosToken { special["bos_token"] = b }
        if let e = eosToken { special["eos_token"] = e }
        let conv = messages.map { JinjaValue.dict([("role", .string($0.role)), ("content", .string($0.content))]) }
        return try render(conversation: conv, addGenerationPrompt: addGenerationPrompt, specialTokens: special,
                          extra: extra, now: now, timeZone: timeZone)
    }

    /// Renders a conversation whose messages are arbitrary dicts (tool calls, structured content, ...).
    /// Keys whose value is None are dropped from each message first, as transformers does.
    public func render(conversation: [JinjaValue], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
                       extra: [String: JinjaValue] = [:], now: Date = Date(), timeZone: TimeZone = .current) throws -> String
    {
        guard !conversation.isEmpty else {
            throw ChatTemplateError(kind: .invalidInput, templateName: name, line: 0, column: 0,
                                    reason: "Cannot apply chat template to an empty conversation. Provide at least one message.")
        }
        var messages: [JVal] = []
        for m in conversation {
            guard case .dict(let pairs) = m else {
                throw ChatTemplateError(kind: .invalidInput, templateName: name, line: 0, column: 0,
                                        reason: "Chat messages should be dicts")
            }
            messages.append(JVal(.dict(pairs.filter { $0.1 != .none })))
        }
        var globals: [String: JVal] = [
            "messages": .list(messages),
            "tools": .none,
            "documents": .none,
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        for (k, v) in specialTokens { globals[k] = .string(v) }
        for (k, v) in extra { globals[k] = JVal(v) }
        return try run(globals: globals, now: now, timeZone: timeZone)
    }

    /// Renders with exactly the given top-level variables (no messages/tools defaults); used by tests of the language.
    func render(variables: [String: JinjaValue], now: Date, timeZone: TimeZone) throws -> String {
        try run(globals: variables.mapValues(JVal.init), now: now, timeZone: timeZone)
    }

    func run(globals: [String: JVal], now: Date, timeZone: TimeZone) throws -> String {
        let interp = JinjaInterpreter(globals: globals, limits: limits, now: now, timeZone: timeZone)
        do {
            let flow = try interp.exec(nodes)
            if flow != .normal { throw JinjaFailure(.syntax, "break/continue outside of a loop") }
            return interp.out
        } catch let f as JinjaFailure {
            throw ChatTemplate.wrap(f, name: name, src: normalizedSource)
        }
    }
}
