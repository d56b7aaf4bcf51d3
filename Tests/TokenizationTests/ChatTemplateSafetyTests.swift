import Foundation
import XCTest
@testable import Tokenization

/// Hostile and malformed templates must end quickly with a ChatTemplateError, never hang or crash.
final class ChatTemplateSafetyTests: XCTestCase {
    let msgs = [ChatMessage(role: "user", content: "hi")]

    func renderError(_ src: String, limits: ChatTemplateLimits = ChatTemplateLimits(),
                     file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        let start = Date()
        defer {
            XCTAssertLessThan(Date().timeIntervalSince(start), 20, "took too long", file: file, line: line)
        }
        do {
            let t = try ChatTemplate(source: src, name: "hostile.jinja", limits: limits)
            _ = try t.render(messages: msgs, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
            XCTFail("expected an error", file: file, line: line)
            return nil
        } catch let e as ChatTemplateError {
            XCTAssertEqual(e.templateName, "hostile.jinja", file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return nil
        }
    }

    func testNestedHugeLoopsHitIterationLimit() {
        let e = renderError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
        XCTAssertEqual(e?.kind, .limitExceeded)
        XCTAssertEqual(e?.line, 1)
    }

    func testSandboxRangeLimit() {
        let e = renderError("{{ range(100001)|length }}")
        XCTAssertEqual(e?.reason, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
    }

    func testHugeStringRepetitionIsRefusedBeforeAllocating() {
        XCTAssertEqual(renderError("{{ 'a' * 1000000000000 }}")?.kind, .limitExceeded)
        XCTAssertEqual(renderError("{{ ['a'] * 1000000000000 }}")?.kind, .limitExceeded)
    }

    func testGrowingOutputHitsOutputLimit() {
        var limits = ChatTemplateLimits()
        limits.maxOutputBytes = 100_000
        let e = renderError("{% for i in range(100000) %}{{ 'xxxxxxxxxx' }}{% endfor %}", limits: limits)
        XCTAssertEqual(e?.kind, .limitExceeded)
    }

    func testDoublingStringHitsSizeLimit() {
        let src = "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"
        XCTAssertEqual(renderError(src)?.kind, .limitExceeded)
    }

    func testRepeatedWorkOnLargeStringHitsWorkBudget() {
        var limits = ChatTemplateLimits()
        limits.maxWork = 5_000_000
        let src = "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{% if s.upper() == s %}{% endif %}{% endfor %}"
        XCTAssertEqual(renderError(src, limits: limits)?.kind, .limitExceeded)
    }

    func testUnboundedMacroRecursion() {
        let e = renderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        XCTAssertEqual(e?.kind, .limitExceeded)
    }

    func testDeepExpressionNesting() {
        let src = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        XCTAssertEqual(renderError(src)?.kind, .limitExceeded)
        let nots = "{{ " + String(repeating: "not ", count: 5000) + "x }}"
        XCTAssertEqual(renderError(nots)?.kind, .limitExceeded)
        let unary = "{{ " + String(repeating: "-", count: 5000) + "1 }}"
        XCTAssertEqual(renderError(unary)?.kind, .limitExceeded)
    }

    func testDeepBlockNesting() {
        let src = String(repeating: "{% if true %}", count: 5000) + "x" + String(repeating: "{% endif %}", count: 5000)
        XCTAssertEqual(renderError(src)?.kind, .limitExceeded)
    }

    func testDeeplyNestedValuesAreRefused() {
        let lists = "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}"
        XCTAssertEqual(renderError(lists)?.kind, .limitExceeded)
        let dicts = "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = dict(a=ns.x) %}{% endfor %}"
        XCTAssertEqual(renderError(dicts)?.kind, .limitExceeded)
    }

    func testSelfContainingNamespacePrintsWithoutRecursingForever() throws {
        let t = try ChatTemplate(source: "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|length }}{{ (ns|string)[:40] }}")
        let out = try t.render(messages: msgs, addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        XCTAssertEqual(out, "1<Namespace {'me': <Namespace {'me': <Nam")
    }

    func testSyntaxErrorsCarryLineAndColumn() {
        let e = renderError("line one\n{% for x in %}\n")
        XCTAssertEqual(e?.kind, .syntax)
        XCTAssertEqual(e?.line, 2)
        XCTAssertEqual(e?.column, 13)
        XCTAssertTrue(e?.description.hasPrefix("hostile.jinja:2:13: syntax error") ?? false, e?.description ?? "")

        XCTAssertEqual(renderError("{% if x %}never closed")?.kind, .syntax)
        XCTAssertEqual(renderError("{{ 'unterminated }}")?.kind, .syntax)
        XCTAssertEqual(renderError("{# no end")?.kind, .syntax)
        XCTAssertEqual(renderError("{{ x ")?.kind, .syntax)
        XCTAssertEqual(renderError("{{ x ) }}")?.kind, .syntax)
        XCTAssertEqual(renderError("{% include 'other.jinja' %}")?.kind, .unsupported)
        XCTAssertEqual(renderError("{{ x | no_such_filter }}")?.reason, "No filter named 'no_such_filter'.")
    }

    func testRaiseExceptionPositionAndMessage() {
        let e = renderError("ok\n  {{ raise_exception('bad role: ' + messages[0].role) }}")
        XCTAssertEqual(e?.kind, .raised)
        XCTAssertEqual(e?.reason, "bad role: user")
        XCTAssertEqual(e?.line, 2)
        XCTAssertEqual(e?.description, "hostile.jinja:2:6: template raised exception: bad role: user")
    }

    func testNoHostAccessThroughAttributes() {
        // Python-internal attributes are not reachable; they are plain missing attributes (undefined).
        let t = try? ChatTemplate(source: "{{ messages.__class__ }}|{{ ''.__class__ }}|{{ namespace.__init__ }}")
        XCTAssertEqual(try t?.render(messages: msgs, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "||")
        XCTAssertEqual(renderError("{% set ns = namespace() %}{% set ns._x = 1 %}")?.kind, .runtime)
        XCTAssertEqual(renderError("{{ messages.append(1) }}")?.kind, .runtime)
    }

    func testEmptyConversationIsRejectedLikeTransformers() {
        let t = ChatTemplate.fallbackChatML
        XCTAssertThrowsError(try t.render(messages: [], addGenerationPrompt: true, bosToken: nil, eosToken: nil)) { err in
            XCTAssertEqual((err as? ChatTemplateError)?.kind, .invalidInput)
        }
    }

    func testGarbageInputNeverCrashes() {
        // A deterministic stream of template fragments; each must either render or throw ChatTemplateError.
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "for", "if", "endif", "endfor", "in", "x", "'", "\"",
                      "(", ")", "[", "]", "{", "}", "|", "trim", ".", ",", "=", "set", "1", "not", "is", " ", "\n", "loop",
                      "messages", "raw", "endraw", "macro", "endmacro", "~", "*", "**", "/", "%"]
        var state: UInt64 = 0x9E3779B97F4A7C15
        for _ in 0..<400 {
            var src = ""
            for _ in 0..<12 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                src += pieces[Int(state >> 33) % pieces.count]
            }
            do {
                let t = try ChatTemplate(source: src)
                _ = try t.render(messages: msgs, addGenerationPrompt: false, bosToken: nil, eosToken: nil)
            } catch is ChatTemplateError {
            } catch {
                XCTFail("\(src): \(error)")
            }
        }
    }
}

final class ChatTemplateAPITests: XCTestCase {
    func testFallbackChatML() throws {
        let out = try ChatTemplate.fallbackChatML.render(
            messages: [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U")],
            addGenerationPrompt: true, bosToken: nil, eosToken: nil)
        XCTAssertEqual(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n")
    }

    func testVariablesPassedLikeTransformers() throws {
        let t = try ChatTemplate(source: "{{ tools is none }}|{{ documents is none }}|{{ bos_token }}|{{ eos_token is defined }}|{{ add_generation_prompt }}|{{ custom }}")
        let out = try t.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false,
                               bosToken: "<s>", eosToken: nil, extra: ["custom": .array([1, "a"])])
        XCTAssertEqual(out, "True|True|<s>|False|False|[1, 'a']")
    }

    func testStrftimeNowUsesGivenClock() throws {
        let t = try ChatTemplate(source: "{{ strftime_now('%d %b %Y') }}")
        let date = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01T00:00:00Z
        let utc = try t.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false,
                               bosToken: nil, eosToken: nil, now: date, timeZone: TimeZone(identifier: "UTC")!)
        XCTAssertEqual(utc, "01 Jan 2025")
        let la = try t.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false,
                              bosToken: nil, eosToken: nil, now: date, timeZone: TimeZone(identifier: "America/Los_Angeles")!)
        XCTAssertEqual(la, "31 Dec 2024")
    }

    func testNoneValuedMessageKeysAreDropped() throws {
        let t = try ChatTemplate(source: "{{ messages[0].tool_calls is defined }}")
        let out = try t.render(conversation: [["role": "user", "content": "x", "tool_calls": nil]], addGenerationPrompt: false)
        XCTAssertEqual(out, "False")
    }

    func testOrderedJSONParsing() throws {
        let v = try JinjaValue(jsonText: #"{"z": 1, "a": [true, null, 2.5, "\u00e9\ud83d\ude00"]}"#)
        XCTAssertEqual(v, .dict([("z", 1), ("a", [true, nil, 2.5, "é😀"])]))
        XCTAssertThrowsError(try JinjaValue(jsonText: "{\"a\": }"))
        XCTAssertThrowsError(try JinjaValue(jsonText: String(repeating: "[", count: 10000)))
    }

    func testTemplateIsReusableAcrossRendersAndThreads() throws {
        let t = try ChatTemplate(source: "{% set x = messages[0].content %}{{ x }}")
        let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 8)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let out = try? t.render(messages: [ChatMessage(role: "user", content: "m\(i)")], addGenerationPrompt: false,
                                    bosToken: nil, eosToken: nil)
            results[i] = out == "m\(i)" ? 1 : 0
        }
        XCTAssertEqual(results.reduce(0, +), 8)
    }
}
