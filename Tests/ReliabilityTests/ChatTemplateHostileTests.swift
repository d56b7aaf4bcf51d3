import Foundation
import TinyModelSupport
import XCTest
import Tokenization

/// Hostile and random chat templates must render or throw ChatTemplateError naming the template, quickly.
final class ChatTemplateHostileTests: XCTestCase {
    static let handWritten: [String] = [
        "{% for i in range(1000000000) %}x{% endfor %}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% for a in range(3000) %}{% for b in range(3000) %}{{ a }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(0) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        "{{ 'a' * 1000000000 }}", "{{ [0] * 1000000000 }}", "{{ ('a' * 100000) * 100000 }}",
        "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}",
        "{{ " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + " }}",
        String(repeating: "{% if true %}", count: 20_000) + String(repeating: "{% endif %}", count: 20_000),
        String(repeating: "{% for m in messages %}", count: 5_000) + "x" + String(repeating: "{% endfor %}", count: 5_000),
        "{{ 2 ** 100000 }}", "{{ 10 ** 400 }}", "{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775808 // -1 }}",
        "{{ -9223372036854775807 - 2 }}", "{{ 9223372036854775807 * 2 }}", "{{ 1 / 0 }}", "{{ 1 // 0 }}", "{{ 1 % 0 }}",
        "{{ range(100000000)|list|length }}", "{{ range(100000000)|join(',') }}", "{{ range(0, 10, 0)|list }}",
        "{{ range(-9223372036854775807, 9223372036854775807)|length }}",
        "{% for x in messages recursive %}{{ loop(messages) }}{% endfor %}",
        "{{ 'x'|center(1000000000) }}", "{{ '%1000000000d'|format(1) }}", "{{ 'abc'[::0] }}", "{{ 'abc'[9223372036854775807:] }}",
        "{{ ('a' * 5000000)|replace('a', 'aaaa')|replace('a', 'aaaa') }}",
        "{{ messages[0]['content'] * 100000000 }}", "{{ raise_exception('boom') }}", "{% for %}", "{{", "{%", "{#", "}}",
        "{% if %}{% endif %}", "{% endfor %}", "{% set %}", "{{ x.y.z.w }}", "{{ none.x }}", "{{ messages[99] }}",
        "{{ messages|tojson(indent=1000000000) }}", "{{ 1e308 * 10 }}", "{{ (1e308 * 10) | int }}", "{{ (0.0/0.0) | int }}",
        "{{ 'nan'|float|int }}", "{{ 'inf'|float|int }}", "{{ 1e300|int }}", "{{ -1e300|round|int }}", "{{ [1,2]|sort(attribute='x') }}",
        "{{ \"\\u\" }}", "{{ '\\x' }}", "{{ '\u{0}' }}", "\u{0}\u{FFFF}\u{10FFFF}", "{% raw %}{{ unterminated",
        "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{% call m() %}x{% endcall %}{% endcall %}",
        "{% filter upper %}{% filter upper %}x", "{{ namespace(a=namespace(a=namespace())) }}", "{{ cycler }}",
        "{{ messages|map(attribute='content')|map('upper')|join }}" + String(repeating: "|list", count: 10_000),
        "{{ " + String(repeating: "'a' ~ ", count: 50_000) + "'a' }}",
        "{{ " + String(repeating: "not ", count: 100_000) + "true }}",
        "{{ " + String(repeating: "-", count: 100_000) + "1 }}",
        "{% set x = 1 %}" + String(repeating: "{% set x = x + x %}", count: 200) + "{{ x }}",
        "{% for i in range(10) %}{% break %}{% endfor %}{% break %}",
    ]

    static let fragments: [String] = [
        "{% for m in messages %}", "{% endfor %}", "{% if ", " %}", "{% else %}", "{% elif ", "{% endif %}", "{{ ", " }}", "{%- ", " -%}",
        "{% macro f(n) %}", "{% endmacro %}", "f(n)", "f(1)", "{% set x = ", "x ~ x", "range(100000)", "range(1000)", "'a' * 100000",
        "messages", "[0]", "['content']", ".content", "|join", "|tojson", "|length", "|upper", "|list", "|reverse", "|sort", "|string",
        "|int", "|float", "|map('upper')", "|selectattr('role', 'equalto', 'user')", "loop.index", "loop", "{#", "#}", "(", ")",
        "[", "]", "{", "}", ",", ":", "'", "\"", "+", "-", "*", "**", "/", "//", "%", "~", " and ", " or ", " not ", " in ", " is ",
        "defined", "none", "true", "1", "0", "-1", "1e308", "9223372036854775807", "x", "n", "raise_exception('e')", "namespace(a=1)",
        "{% raw %}", "{% endraw %}", "{% filter upper %}", "{% endfilter %}", "{% call f(1) %}", "{% endcall %}", "caller()",
        "{% break %}", "{% continue %}", "\n", " ", "🙂", "\u{0}", "add_generation_prompt", "bos_token", "eos_token",
        "{% generation %}", "{% endgeneration %}", ".items()", ".split(',')", ".strip()", ".startswith('a')", "[::-1]", "[1:2:0]",
        "if", "else", "for", "recursive",
    ]

    func testHostileTemplatesEndQuickly() throws {
        var rng = SeededRNG(seed: 0x4A49_0005)
        var runner = CaseRunner("chat-templates")
        var sources = Self.handWritten
        for _ in 0..<(2500 * scale) {
            var s = ""
            for _ in 0..<rng.int(1..<24) { s += rng.pick(Self.fragments) }
            sources.append(s)
        }
        // Mutations of a real template reach deeper into the interpreter than pure fragment soup.
        let base = Array(TinyModel.chatML.utf8)
        for _ in 0..<(1000 * scale) {
            var b = base
            for _ in 0..<rng.int(1..<4) { b = ByteMutator.mutate(b, rng: &rng) }
            sources.append(String(decoding: b, as: UTF8.self))
        }
        let messages = [ChatMessage(role: "system", content: "sys"), ChatMessage(role: "user", content: "hello {{ x }}"),
                        ChatMessage(role: "assistant", content: "hi"), ChatMessage(role: "user", content: "again")]
        for (i, src) in sources.enumerated() {
            let name = "hostile-\(i).jinja"
            runner.run("template \(i): \(src.prefix(80).debugDescription)", names: [name]) {
                let t = try ChatTemplate(source: src, name: name)
                let out = try t.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
                // The output cap is part of the contract: no template may produce more than it.
                XCTAssertLessThanOrEqual(out.utf8.count, ChatTemplateLimits().maxOutputBytes, name)
            }
        }
        runner.report()
        XCTAssertEqual(runner.successes + runner.failures, sources.count)
        XCTAssertGreaterThan(runner.failures, sources.count / 4)
    }
}
