"""The REST API's documentation: every route's summary, description and tag in the OpenAPI
document (standalone and in SDNext's), and the standalone /docs page built from it, which works
offline (nothing is fetched from anywhere but the app) and escapes what it shows."""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from fastapi import FastAPI

from lib_lora_manager import api, api_docs
from lib_lora_manager.jobs import JobQueue

XSS = "<img src=x onerror=alert(1)>"


def all_operations(openapi: dict) -> dict[tuple[str, str], dict]:
    return {(method, path): operation for path, item in openapi["paths"].items() for method, operation in item.items()
            if path.startswith(api.PREFIX)}


def test_every_route_has_a_summary_a_description_and_a_tag(library, tmp_path):
    from painting import PaintingGenerator

    jobs = JobQueue(library.store, PaintingGenerator(tmp_path / "out"))
    app = FastAPI()
    api.mount(app.add_api_route, api.routes(lambda: library) + api.job_routes(lambda: library, lambda: jobs))
    operations = all_operations(app.openapi())
    assert len(operations) == len(api.routes(lambda: library)) + len(api.job_routes(lambda: library, lambda: jobs))
    for (method, path), operation in operations.items():
        where = f"{method.upper()} {path}"
        summary, description = operation.get("summary", ""), operation.get("description", "")
        # FastAPI's fallback summary is the function's name in title case ("List Loras")
        assert summary and summary != operation["operationId"].split("_lora_manager")[0].replace("_", " ").title(), where
        assert description and description != summary and "\n" not in summary, where
        assert operation["tags"][0].startswith("LoRA Manager: "), where
    assert operations[("get", f"{api.PREFIX}/loras")]["summary"] == "List and search LoRAs"
    assert operations[("post", f"{api.PREFIX}/generate")]["tags"] == ["LoRA Manager: generation"]
    assert operations[("post", f"{api.PREFIX}/scan")]["tags"] == ["LoRA Manager: library"]


def test_the_page_escapes_the_documents_text():
    openapi = {"info": {"title": XSS, "description": f"about ``{XSS}``"}, "paths": {
        f"/x/{XSS}": {"get": {"summary": XSS, "description": f"uses ``{XSS}``", "tags": [XSS],
                              "parameters": [{"name": XSS, "in": "query", "schema": {"type": "string", "description": XSS,
                                                                                     "default": XSS}}],
                              "responses": {"200": {"description": XSS}}},
                      "post": {"summary": "body", "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"properties": {XSS: {"enum": [XSS], "description": XSS}}}}}}}}}}
    html = api_docs.page(openapi)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and "http" not in html.replace('href="openapi.json"', "")  # nothing to fetch
    assert f"<code>{api_docs.esc(XSS)}</code>" in html  # ``…`` shows as code, still escaped


def test_describe_reads_schemas_in_words():
    assert api_docs.describe({"type": "integer", "minimum": 1.0, "maximum": 200, "default": 48}) == \
        "integer from 1 to 200; default 48"
    assert api_docs.describe({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}) == \
        "string, at most 5 characters or null"
    assert api_docs.describe({"type": "array", "items": {"enum": ["a", "b"]}}) == 'array of one of "a", "b"'


def test_our_routes_show_their_summaries_in_sdnexts_openapi(sdnext):
    double = sdnext(settings={"lora_manager_scan_on_start": False})
    try:
        operations = all_operations(double.app.openapi())
        listed = operations[("get", f"{api.PREFIX}/loras")]
        assert listed["summary"] == "List and search LoRAs" and listed["tags"] == ["LoRA Manager: LoRAs"]
        assert all(operation.get("description") for operation in operations.values())
    finally:
        host = sys.modules["lib_lora_manager.hosts.sdnext"]
        host.app.pause()
        host.app.library().close()


def test_docs_render_offline_in_a_browser(standalone_in_browser):
    """/docs lists the routes with every request to another host refused, as on a machine
    without internet (FastAPI's Swagger page stays blank then: its scripts come from a CDN)."""
    session = standalone_in_browser()
    page, local = session.page, urlparse(session.url).hostname
    refused: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(session.url + "/docs")
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_have_text("LoRA Manager")
    loras = page.locator(f"#get-{api.PREFIX.strip('/').replace('/', '-')}-loras")
    expect(loras).to_contain_text("List and search LoRAs")
    expect(loras.locator("table")).to_contain_text("per_page")
    assert page.locator("section.op").count() == len(api.routes(lambda: None))  # no job routes: no model
    page.locator("nav a", has_text="/lora-manager/v1/bulk").click()
    expect(page.locator(f"#post-{api.PREFIX.strip('/').replace('/', '-')}-bulk")).to_be_in_viewport()
    assert refused == []
    assert page.goto(session.url + "/openapi.json").ok
