import Foundation
import XCTest
@testable import Tokenization

/// Byte-identical comparison with transformers' own rendering (fixtures made by
/// scripts/reference/make_chat_template_fixtures.py).
final class ChatTemplateFixtureTests: XCTestCase {
    static let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat_templates")

    static func loadJSON(_ name: String) throws -> JinjaValue {
        let data = try Data(contentsOf: fixtureDir.appendingPathComponent(name))
        return try JinjaValue(jsonText: String(decoding: data, as: UTF8.self))
    }

    static func field(_ v: JinjaValue, _ key: String) -> JinjaValue? {
        guard case .dict(let pairs) = v else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    static func string(_ v: JinjaValue?) -> String? {
        if case .string(let s)? = v { return s }
        return nil
    }

    /// The instant the reference pinned strftime_now to, read as UTC.
    static func fixedNow(_ root: JinjaValue) throws -> Date {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        guard let s = string(field(root, "fixed_now_utc")), let d = f.date(from: s) else {
            throw XCTSkip("fixture has no fixed_now_utc")
        }
        return d
    }

    static let utc = TimeZone(identifier: "UTC")!

    func testRealTemplatesMatchTransformersByteForByte() throws {
        let root = try Self.loadJSON("render_cases.json")
        let now = try Self.fixedNow(root)
        guard case .array(let cases)? = Self.field(root, "cases") else { return XCTFail("no cases") }
        XCTAssertGreaterThan(cases.count, 150)
        var templates: [String: ChatTemplate] = [:]
        var rendered = 0
        var errors = 0
        var templatesSeen = Set<String>()
        for c in cases {
            let tname = Self.string(Self.field(c, "template"))!
            let conv = Self.string(Self.field(c, "conversation"))!
            templatesSeen.insert(tname)
            if templates[tname] == nil {
                let url = Self.fixtureDir.appendingPathComponent("templates/\(tname).jinja")
                templates[tname] = try ChatTemplate(source: try String(contentsOf: url, encoding: .utf8), name: tname)
            }
            let t = templates[tname]!
            guard case .array(let messages)? = Self.field(c, "messages"),
                  case .bool(let agp)? = Self.field(c, "add_generation_prompt"),
                  case .dict(let specialPairs)? = Self.field(c, "special_tokens"),
                  case .dict(let extraPairs)? = Self.field(c, "extra")
            else { return XCTFail("malformed case") }
            var special: [String: String] = [:]
            for (k, v) in specialPairs { special[k] = Self.string(v) }
            var extra: [String: JinjaValue] = [:]
            for (k, v) in extraPairs { extra[k] = v }
            let label = "\(tname) / \(conv) / add_generation_prompt=\(agp)"
            if let expected = Self.string(Self.field(c, "expected")) {
                do {
                    let got = try t.render(conversation: messages, addGenerationPrompt: agp, specialTokens: special,
                                           extra: extra, now: now, timeZone: Self.utc)
                    XCTAssertEqual(got, expected, label)
                    rendered += 1
                } catch {
                    XCTFail("\(label): unexpected error \(error)")
                }
            } else {
                let kind = Self.string(Self.field(c, "error"))
                XCTAssertThrowsError(try t.render(conversation: messages, addGenerationPrompt: agp, specialTokens: special,
                                                  extra: extra, now: now, timeZone: Self.utc), label) { err in
                    guard let e = err as? ChatTemplateError else { return XCTFail("\(label): not a ChatTemplateError: \(err)") }
                    XCTAssertEqual(e.templateName, tname)
                    if kind == "raised" {
                        XCTAssertEqual(e.kind, .raised, label)
                        XCTAssertEqual(e.reason, Self.string(Self.field(c, "message")), label)
                        XCTAssertGreaterThan(e.line, 0, "raise_exception errors carry a position")
                    }
                }
                errors += 1
            }
        }
        XCTAssertTrue(templatesSeen.isSuperset(of: ["smollm2_135m_instruct", "qwen2_5_instruct", "llama_3_1_instruct",
                                                    "llama_3_2_instruct", "mistral_7b_instruct_v0_2", "mistral_7b_instruct_v0_3"]))
        XCTAssertGreaterThan(rendered, 100)
        XCTAssertGreaterThan(errors, 10)
    }

    func testExpressionLanguageMatchesJinja() throws {
        let root = try Self.loadJSON("expression_cases.json")
        let now = try Self.fixedNow(root)
        guard case .dict(let varPairs)? = Self.field(root, "variables"),
              case .array(let cases)? = Self.field(root, "cases") else { return XCTFail("malformed fixture") }
        var vars: [String: JinjaValue] = [:]
        for (k, v) in varPairs { vars[k] = v }
        XCTAssertGreaterThan(cases.count, 50)
        for c in cases {
            let src = Self.string(Self.field(c, "template"))!
            if let expected = Self.string(Self.field(c, "expected")) {
                do {
                    let t = try ChatTemplate(source: src, name: "expr")
                    XCTAssertEqual(try t.render(variables: vars, now: now, timeZone: Self.utc), expected, src)
                } catch {
                    XCTFail("\(src): unexpected error \(error)")
                }
            } else {
                let kind = Self.string(Self.field(c, "error"))
                var thrown: Error?
                do {
                    let t = try ChatTemplate(source: src, name: "expr")
                    _ = try t.render(variables: vars, now: now, timeZone: Self.utc)
                } catch {
                    thrown = error
                }
                guard let e = thrown as? ChatTemplateError else {
                    XCTFail("\(src): expected a ChatTemplateError (\(kind ?? "?")), got \(String(describing: thrown))")
                    continue
                }
                if kind == "raised" {
                    XCTAssertEqual(e.kind, .raised, src)
                    XCTAssertEqual(e.reason, Self.string(Self.field(c, "message")), src)
                }
                if kind == "TemplateSyntaxError" || kind == "TemplateAssertionError" {
                    XCTAssertTrue(e.kind == .syntax || e.kind == .unsupported, "\(src): \(e)")
                }
            }
        }
    }

    func testSmolLM2TemplateThroughMessageAPI() throws {
        let url = Self.fixtureDir.appendingPathComponent("templates/smollm2_135m_instruct.jinja")
        let t = try ChatTemplate(source: try String(contentsOf: url, encoding: .utf8), name: "SmolLM2")
        let out = try t.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true,
                               bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        XCTAssertEqual(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }
}
