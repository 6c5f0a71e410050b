#!/usr/bin/env python3
"""Renders chat templates with Python's jinja2, configured the way transformers configures it,
and writes fixtures.json for test/unit/templates. Run: /usr/bin/python3 gen_fixtures.py

The environment below is written from transformers' documented behaviour (`_compile_jinja_template`):
an immutable sandbox, trim_blocks + lstrip_blocks, the loopcontrols extension, a `{% generation %}`
block extension that records where assistant text was rendered, a tojson filter that calls
json.dumps(ensure_ascii=False) without HTML escaping, and raise_exception / strftime_now globals.
strftime_now is pinned to a fixed UTC instant so fixtures do not depend on the day they were made.
"""
import datetime
import json
import os

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FIXED_NOW = datetime.datetime(2026, 3, 5, 14, 7, 9, tzinfo=datetime.timezone.utc)


class GenerationTracker(Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body unchanged and records the body's span."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        self.chunks = None  # output pieces rendered so far, when tracking
        self.spans = None

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_track", []), [], [], body).set_lineno(lineno)

    def _track(self, caller):
        text = caller()
        if self.chunks is not None:
            start = len("".join(self.chunks))
            self.spans.append((start, start + len(text)))
        return text


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()
TRACKER = next(e for e in ENV.extensions.values() if isinstance(e, GenerationTracker))


def utf16(s, i):
    """Python indexes code points; JavaScript strings index UTF-16 units."""
    return len(s[:i].encode("utf-16-le")) // 2


def render(source, variables):
    template = ENV.from_string(source)
    chunks, spans = [], []
    TRACKER.chunks, TRACKER.spans = chunks, spans
    try:
        for piece in template.generate(**variables):
            chunks.append(piece)
        out = "".join(chunks)
        return {"output": out, "generation": [[utf16(out, s), utf16(out, e)] for s, e in spans]}
    except Exception as e:  # the message is part of the fixture: the linter shows it to users
        return {"error": str(e), "errorType": type(e).__name__}
    finally:
        TRACKER.chunks, TRACKER.spans = None, None


# Small templates that poke at the places where a JavaScript Jinja could differ from jinja2.
PROBES = [
    ("tojson_plain", "{{ x | tojson }}", {"x": {"b": [1, 2.5, None, True], "a": "é\"<>&\n", "c": {}}}),
    ("tojson_indent", "{{ x | tojson(indent=2) }}", {"x": {"b": [1, {"z": []}], "a": "x"}}),
    ("tojson_sort", "{{ x | tojson(sort_keys=True) }}", {"x": {"b": 1, "a": 2}}),
    ("tojson_float", "{{ [1.0, 0.1, 1e20, -0.0, 3] | tojson }}", {}),
    ("tojson_string_ascii", "{{ 'ü🙂' | tojson(ensure_ascii=True) }}", {}),
    ("print_none_bool", "{{ none }}|{{ true }}|{{ false }}|{{ x }}", {"x": None}),
    ("print_float", "{{ 1.0 }}|{{ 2.5 }}|{{ 10 / 4 }}|{{ 10 // 4 }}|{{ 7 % 3 }}|{{ 1e3 }}", {}),
    ("print_list_dict", "{{ [1, 'a', none, true] }}|{{ {'k': 'v', 'n': 1} }}", {}),
    ("string_filter_dict", "{{ x | string }}", {"x": {"temp": 21.5, "ok": True, "s": "it's"}}),
    ("trim_lstrip_blocks", "<ul>\n    {% for i in xs %}\n    <li>{{ i }}</li>\n    {% endfor %}\n</ul>\n", {"xs": [1, 2]}),
    ("whitespace_control", "a  {%- if true -%}  b  {%- endif -%}  c\n{{- ' d ' -}}\n e", {}),
    ("comments", "a\n{# c #}\nb {#- d -#} c\n", {}),
    ("set_in_loop_scope", "{% set n = 0 %}{% for i in [1,2,3] %}{% set n = n + i %}{% endfor %}{{ n }}", {}),
    ("namespace", "{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}),
    ("loop_vars", "{% for i in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}|{% endfor %}", {}),
    ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_filter", "{% for i in range(6) if i is even %}{{ i }}{% endfor %}", {}),
    ("string_methods", "{{ '  Ab c  '.strip() }}|{{ 'x,y'.split(',') }}|{{ 'ab'.upper() }}|{{ 'abc'.startswith('a') }}|{{ 'a\\nb'.rstrip('b') }}|{{ 'Hello'.replace('l', 'L') }}|{{ 'hello world'.title() }}", {}),
    ("slicing", "{{ 'abcdef'[1:3] }}|{{ 'abcdef'[::-1] }}|{{ [1,2,3][-1] }}|{{ [1,2,3][:-1] }}", {}),
    ("tests", "{{ 'a' is string }}{{ 'a' is iterable }}{{ {} is mapping }}{{ [] is mapping }}{{ 1 is number }}{{ none is none }}{{ x is defined }}{{ 3 is odd }}", {}),
    ("filters", "{{ [3,1,2] | sort | join(',') }}|{{ xs | selectattr('r', 'equalto', 'u') | list | length }}|{{ xs | map(attribute='r') | join }}|{{ 'abc' | length }}|{{ none | default('d') }}|{{ '5' | int + 1 }}|{{ 'A' | lower }}|{{ 'x' ~ 1 }}", {"xs": [{"r": "u"}, {"r": "a"}, {"r": "u"}]}),
    ("items_dictsort", "{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}|{% for k, v in x | dictsort %}{{ k }}={{ v }};{% endfor %}", {"x": {"b": 1, "a": 2}}),
    ("in_operator", "{{ 'a' in 'cat' }}{{ 'k' in {'k': 1} }}{{ 2 in [1,2] }}{{ 'z' not in 'cat' }}", {}),
    ("macro", "{% macro f(x, y='d') %}[{{ x }}{{ y }}]{% endmacro %}{{ f(1) }}{{ f(2, y='e') }}", {}),
    ("ternary", "{{ 'y' if x else 'n' }}{{ 'y' if none else 'n' }}", {"x": [1]}),
    ("strftime", "{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%A %a %j') }}", {}),
    ("raise", "{{ raise_exception('Nope: ' + x) }}", {"x": "bad"}),
    ("undefined_attr", "[{{ m.missing }}][{{ m['missing'] }}]{% if m.missing is not defined %}u{% endif %}", {"m": {"a": 1}}),
    ("indent_filter", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}", {}),
    # jinja2's default Undefined (what transformers uses): iterable as empty, printable as '', most filters
    # answer an empty value, attribute/item access and arithmetic raise.
    ("undefined_for", "{% for t in u %}x{% endfor %}|{% for t in u %}x{% else %}E{% endfor %}|{% for k, v in u|items %}x{% endfor %}|{% for t in u if t %}x{% endfor %}|{% for t in m.tool_calls %}x{% endfor %}", {"m": {"role": "assistant"}}),
    ("undefined_filters", "[{{ u|length }}][{{ u|count }}][{{ u|list }}][{{ u|join(',') }}][{{ u|first }}][{{ u|string }}][{{ u|upper }}][{{ u|map(attribute='x')|list }}][{{ u|selectattr('a')|list }}][{{ u|sort }}][{{ u|default('d') }}][{{ u|trim }}][{{ u|last }}]", {}),
    ("undefined_tests_ops", "{{ u is defined }}{{ u is iterable }}{{ u is sequence }}{{ u is none }}{{ u == u }}{{ u == none }}{{ u != none }}{{ u in [1] }}{{ 1 in u }}|{{ 'a' ~ u ~ 'b' }}|{{ u or 2 }}|{{ not u }}|{{ u|length + 1 }}|{% if u %}y{% else %}n{% endif %}", {}),
    ("undefined_attr_raises", "{{ u.name }}", {}),
    ("undefined_item_raises", "{{ u['a'] }}", {}),
    ("undefined_nested_raises", "{{ m.missing.x }}", {"m": {"a": 1}}),
    ("undefined_index_raises", "{{ xs[5].role }}", {"xs": []}),
    ("undefined_defined_test_raises", "{{ u.x is defined }}", {}),
    ("undefined_tojson_raises", "{{ u|tojson }}", {}),
    ("undefined_int_raises", "{{ u|int }}", {}),
    ("undefined_plus_raises", "{{ u + 'x' }}", {}),
    ("undefined_in_string_raises", "{{ u in 'abc' }}", {}),
    ("tools_none", "{{ tools is defined }}{{ tools is none }}{{ documents is defined }}{{ documents is none }}{% if tools %}T{% endif %}[{{ tools }}][{{ tools.name }}]", {"tools": None, "documents": None}),
    ("tools_none_guard", "{% if tools is defined and tools is not none %}{% for t in tools %}x{% endfor %}{% else %}no tools{% endif %}", {"tools": None}),
    ("tools_none_loop_raises", "{% for t in tools %}x{% endfor %}", {"tools": None}),
    ("none_content_concat_guard", "{% if x.content %}{{ x.content }}{% else %}empty{% endif %}", {"x": {"content": None}}),
]


# Special tokens of the extra templates (default: <s>, <|im_end|>).
EXTRA_TOKENS = {
    "mistral": ("<s>", "</s>"),
    "r1_distill": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "glm4": ("", "<|endoftext|>"),
}


# Broken templates: jinja2's line number for each syntax error (Lathe must name the same line).
SYNTAX_ERRORS = [
    "{% for m in messages %}\n{{ m.content }}\n{% if m.role == 'user' %}\nx\n{% endfor %}",
    "{% for m in messages %}\n{{ m.content }\n{% endfor %}",
    "a\n{{ m.content + }}\n",
    "{% if x %}\n{% for m in y %}\n",
    "{% endif %}",
    "\n\n{% else %}",
    "{% iff x %}{% endif %}",
    "line1\n{% for in messages %}{% endfor %}",
    "{% set x = %}",
    "{{ messages[0]['content'] }",
    "{% if a %}\n{% elif %}{% endif %}",
    "{% for m in messages %}\n\n{{ m|tojson(indent=) }}{% endfor %}",
    "{%- for message in messages %}\n    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endfor %}\n",
]


def syntax_errors():
    out = []
    for source in SYNTAX_ERRORS:
        try:
            ENV.from_string(source)
            out.append({"template": source, "line": None})
        except jinja2.TemplateSyntaxError as e:
            out.append({"template": source, "line": e.lineno, "message": e.message})
    return out


def main():
    with open(os.path.join(HERE, "conversations.json"), encoding="utf-8") as f:
        data = json.load(f)
    index_path = os.path.join(ROOT, "resources", "templates", "index.json")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)

    templates = []
    for meta in index["templates"]:
        with open(os.path.join(ROOT, "resources", "templates", meta["file"]), encoding="utf-8") as f:
            templates.append((meta["name"], "builtin:" + meta["name"], f.read(), meta.get("bosToken") or "<s>", meta["eosToken"]))
    for name in sorted(os.listdir(os.path.join(HERE, "extra"))):
        with open(os.path.join(HERE, "extra", name), encoding="utf-8") as f:
            stem = name[:-6].replace("_gen", "")
            bos, eos = EXTRA_TOKENS.get(stem, ("<s>", "<|im_end|>"))
            templates.append((name[:-6], "extra:" + name, f.read(), bos, eos))

    cases = []
    for name, source_ref, source, bos, eos in templates:
        for conv in data["conversations"]:
            variants = [{"add_generation_prompt": False}, {"add_generation_prompt": True}]
            if name in ("smollm3", "qwen3", "qwen3_gen"):
                variants.append({"add_generation_prompt": True, "enable_thinking": False})
            for extra in variants:
                # transformers always passes tools= and documents=, None when there are none.
                variables = {"messages": conv["messages"], "bos_token": bos, "eos_token": eos, **extra,
                             "tools": data["tools"] if conv.get("tools") else None, "documents": None}
                result = render(source, variables)
                cases.append({
                    "template": name, "source": source_ref, "conversation": conv["id"],
                    "bos_token": bos, "eos_token": eos, "tools": bool(conv.get("tools")),
                    "kwargs": extra, **result,
                })

    probes = []
    for name, source, variables in PROBES:
        probes.append({"name": name, "template": source, "variables": variables, **render(source, variables)})

    out = {
        "version": 1,
        "jinja2": jinja2.__version__,
        "now": FIXED_NOW.isoformat(),
        "cases": cases,
        "probes": probes,
        "syntaxErrors": syntax_errors(),
    }
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {len(probes)} probes, {sum('error' in c for c in cases)} case errors")


if __name__ == "__main__":
    main()
