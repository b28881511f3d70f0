"""The REST API's documentation page, served at /docs by the standalone app.

FastAPI's own /docs loads Swagger UI from a CDN and is blank offline, and neither FastAPI nor
Gradio ships its files. This page is built here from the app's OpenAPI document instead: one
self-contained HTML file (inline CSS, no script, nothing fetched), every text from the document
escaped. It lists the routes by tag with their summary, description, parameters, body and
answers; /openapi.json stays there for clients and code generators. Inside SDNext our routes
show in SDNext's own /docs, which is left as it is.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1d1f23;background:#fff}
h1{margin:.2rem 0}h2{margin-top:2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
h3{font-size:1rem;margin:0}code,pre{font:13px/1.4 ui-monospace,monospace}
nav ul{list-style:none;padding-left:0;margin:.2rem 0 .8rem}nav li{margin:.15rem 0}nav a code{white-space:nowrap}
a{color:#2456a6}
.op{border:1px solid #d5d9e0;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
.method{display:inline-block;min-width:4.2rem;font:bold 12px ui-monospace,monospace;text-transform:uppercase;
color:#fff;border-radius:4px;padding:.1rem .4rem;margin-right:.5rem;text-align:center;background:#5b6472}
.get{background:#2f74c0}.post{background:#2f8f4e}.patch{background:#b7791f}.delete{background:#c0392b}.put{background:#7d4cb4}
.summary{color:#444}.desc{white-space:pre-line;margin:.4rem 0}table{border-collapse:collapse;margin:.3rem 0;width:100%}
th,td{border:1px solid #e1e4ea;padding:.2rem .45rem;text-align:left;vertical-align:top}th{background:#f3f5f8}
details pre{background:#f6f7f9;padding:.5rem;overflow:auto;max-height:24rem}.muted{color:#666}
@media (prefers-color-scheme:dark){body{background:#16181c;color:#e3e5e8}a{color:#8fb4ff}.op{border-color:#333844}
th{background:#23262d}th,td{border-color:#333844}details pre{background:#1f2227}.summary,.muted{color:#aab}}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def prose(value: Any) -> str:
    """Escaped text whose ``double-backquoted`` parts (docstring style) show as code."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", esc(value))


def page(openapi: dict[str, Any]) -> str:
    """The documentation page for an OpenAPI document (as ``FastAPI.openapi()`` returns it)."""
    info = openapi.get("info") or {}
    title = str(info.get("title") or "API")
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}  # by tag, sorted below
    for path, item in (openapi.get("paths") or {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                tag = (operation.get("tags") or ["Other"])[0]
                groups.setdefault(tag, []).append((method, path, operation))
    groups = dict(sorted(groups.items(), key=lambda item: item[0].lower()))
    parts = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · API</title>'
             f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head><body>',
             f"<h1>{esc(title)}</h1>"]
    if info.get("description"):
        parts.append(f'<p class="desc">{prose(info["description"])}</p>')
    parts.append('<p class="muted">Errors answer <code>{"error": "reason"}</code> with a 4xx status. The machine-readable '
                 'document: <a href="openapi.json">openapi.json</a>.</p>')
    nav = []
    for tag, operations in groups.items():
        links = "".join(f'<li><a href="#{_anchor(m, p)}"><span class="method {m}">{m}</span><code>{esc(p)}</code></a> '
                        f'<span class="summary">{esc(o.get("summary"))}</span></li>' for m, p, o in operations)
        nav.append(f"<strong>{esc(tag)}</strong><ul>{links}</ul>")
    parts.append(f'<nav aria-label="Routes">{"".join(nav)}</nav>')
    for tag, operations in groups.items():
        parts.append(f"<h2>{esc(tag)}</h2>")
        parts.extend(_operation(method, path, operation) for method, path, operation in operations)
    parts.append("</body></html>")
    return "".join(parts)


def _anchor(method: str, path: str) -> str:
    return f"{method}-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    out = [f'<section class="op" id="{_anchor(method, path)}"><h3><span class="method {method}">{method}</span>'
           f'<code>{esc(path)}</code></h3><div class="summary">{esc(operation.get("summary"))}</div>']
    if operation.get("description"):
        out.append(f'<div class="desc">{prose(operation["description"])}</div>')
    parameters = [p for p in operation.get("parameters") or [] if isinstance(p, dict)]
    if parameters:
        rows = "".join(f"<tr><td><code>{esc(p.get('name'))}</code></td><td>{esc(p.get('in'))}</td>"
                       f"<td>{'yes' if p.get('required') else 'no'}</td><td>{esc(describe(p.get('schema') or {}))}</td></tr>"
                       for p in parameters)
        out.append(f"<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Value</th></tr>{rows}</table>")
    body = ((operation.get("requestBody") or {}).get("content") or {}).get("application/json")
    if body:
        out.append(_body(body.get("schema") or {}, bool(operation["requestBody"].get("required"))))
    answers = operation.get("responses") or {}
    if answers:
        listed = ", ".join(f"{esc(code)}: {esc(answer.get('description'))}" for code, answer in answers.items())
        out.append(f'<div class="muted">Answers: {listed}</div>')
    out.append("</section>")
    return "".join(out)


def _body(schema: dict[str, Any], required: bool) -> str:
    fields = schema.get("properties") or {}
    needed = set(schema.get("required") or [])
    head = f"<div>JSON body ({'required' if required else 'optional'})</div>"
    rows = "".join(f"<tr><td><code>{esc(name)}</code>{' (required)' if name in needed else ''}</td>"
                   f"<td>{esc(describe(field))}</td></tr>" for name, field in fields.items())
    table = f"<table><tr><th>Field</th><th>Value</th></tr>{rows}</table>" if rows else ""
    raw = esc(json.dumps(schema, indent=2, ensure_ascii=False))
    return f"{head}{table}<details><summary>JSON schema</summary><pre>{raw}</pre></details>"


def describe(schema: dict[str, Any]) -> str:
    """A schema in a few words: type, bounds, choices, default, description."""
    if not isinstance(schema, dict):
        return ""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        text = " or ".join(filter(None, (describe(o) for o in options if isinstance(o, dict))))
    elif "enum" in schema:
        text = "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    else:
        kind = schema.get("type") or ("object" if "properties" in schema else "")
        if isinstance(kind, list):
            kind = " or ".join(map(str, kind))
        text = str(kind)
        if kind == "array" and isinstance(schema.get("items"), dict):
            text = f"array of {describe(schema['items']) or 'values'}"
        low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
        if low or high:
            text += f" from {low or '…'} to {high or '…'}"
        if schema.get("maxLength") is not None:
            text += f", at most {schema['maxLength']} characters"
    extras = []
    if "default" in schema:
        extras.append(f"default {json.dumps(schema['default'], ensure_ascii=False)}")
    if schema.get("description"):
        extras.append(str(schema["description"]))
    return "; ".join(filter(None, [text, *extras]))


def _number(value: Any) -> str:
    """A bound as written in the docs (pydantic gives whole floats such as 1.0); "" for none."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None or isinstance(value, bool) else str(value)
