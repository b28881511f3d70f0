"""How a REST request is read: typed parameters, a capped JSON body, errors as ``{"error": …}``.

FastAPI validates the parameters it knows itself and answers its own ``{"detail": [...]}``
(through the app's exception handlers, which in SDNext are SDNext's, fixed once it has started).
So our endpoints take the bare ``Request`` and read it here: path and query parameters through
their field types (fields.py), the body as a stream capped at ``MAX_BODY_BYTES`` (a 200 MB body
is refused after its headers, or after its first megabyte when it has no Content-Length, never
read into memory), then parsed as JSON and validated by its pydantic model (schemas.py). Every
refusal and every domain error answers ``{"error": "readable sentence"}`` with its 4xx status
(``position`` too for query errors), the same standalone and in SDNext.

The OpenAPI document still shows each endpoint's parameters and body: ``endpoint`` hands the
host ``openapi_extra`` built from the same field types and models (``route_options``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import InvalidInput, LoraManagerError, TooLarge
from .fields import Field
from .results import to_json
from .schemas import Body

MAX_BODY_BYTES = 1024 * 1024  # our largest honest body (100,000 ids) is under 1 MB

_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}, "position": {"type": "integer"}},
                 "required": ["error"]}


@dataclass(frozen=True)
class Param:
    """A query parameter: its field type and the value when it is absent."""

    field: Field
    default: Any = None


def error_response(error: LoraManagerError) -> JSONResponse:
    body: dict[str, Any] = {"error": str(error)}
    if getattr(error, "position", None) is not None:  # a query error: where the bad term starts
        body["position"] = error.position
    # a refused body may still be arriving: the connection cannot carry another request
    headers = {"Connection": "close"} if isinstance(error, TooLarge) else None
    return JSONResponse(body, status_code=error.status, headers=headers)


def endpoint(*, path: dict[str, Field] | None = None, query: dict[str, Param] | None = None,
             body: type[Body] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ``fn(**parameters, body=model)`` (a plain function, run on a worker thread like
    FastAPI's sync endpoints) into an endpoint that reads and checks the request itself."""
    path, query = path or {}, query or {}

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        async def handler(request: Request):
            try:
                kwargs = {name: field.parse(request.path_params.get(name)) for name, field in path.items()}
                for name, param in query.items():
                    raw = request.query_params.get(name)
                    kwargs[name] = param.default if raw is None else param.field.parse(raw, name)
                if body is not None:
                    kwargs["body"] = body.from_json(_json(await read_body(request)))
                result = await run_in_threadpool(fn, **kwargs)
            except LoraManagerError as e:
                return error_response(e)
            # results (dataclasses) become JSON here, the one place REST serialises them, as a
            # response of its own: handed a dict, FastAPI would walk it again (jsonable_encoder,
            # ~2 ms for a page of 48 cards) to find what to_json already made plain
            return result if isinstance(result, Response) else JSONResponse(to_json(result))

        # not functools.wraps: FastAPI would read the wrapped signature and validate it itself
        handler.__name__, handler.__qualname__, handler.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        handler.route_options = {"openapi_extra": _openapi(path, query, body), **_summary(fn.__doc__)}
        return handler
    return decorate


def route_options(handler: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments for the host's ``add_api_route`` (the OpenAPI description)."""
    return dict(getattr(handler, "route_options", {}))


def _summary(doc: str | None) -> dict[str, str]:
    """OpenAPI summary and description from an endpoint's docstring: its first line, then the
    rest (FastAPI would show the whole docstring as the description and the function's name as
    the summary)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    if not lines:
        return {}
    rest = " ".join(" ".join(lines[1:]).split())  # one paragraph: docs pages keep their own line breaks
    return {"summary": lines[0].strip(), "description": rest or lines[0].strip()}


async def read_body(request: Request) -> bytes:
    """The body, refused with TooLarge past MAX_BODY_BYTES before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidInput("the Content-Length header is not a number")
        if int(declared) > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is too large ({int(declared)} bytes; at most {MAX_BODY_BYTES})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"the request body is too large (more than {MAX_BODY_BYTES} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(raw: bytes) -> Any:
    """The body as JSON; None when it is empty."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:  # bad JSON or bad UTF-8 (ValueErrors both); nesting too deep
        raise InvalidInput(f"the request body is not valid JSON: {e if not isinstance(e, RecursionError) else 'nested too deeply'}") from None


def _openapi(path: dict[str, Field], query: dict[str, Param], body: type[Body] | None) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": field.json_schema()} for name, field in path.items()]
    parameters += [{"name": name, "in": "query", "required": False,
                    "schema": param.field.json_schema() | ({"default": param.default} if param.default is not None else {})}
                   for name, param in query.items()]
    extra: dict[str, Any] = {"responses": {"4XX": {"description": "refused: the reason in words",
                                                    "content": {"application/json": {"schema": _ERROR_SCHEMA}}}}}
    if parameters:
        extra["parameters"] = parameters
    if body is not None:
        extra["requestBody"] = {"required": not body.optional,
                                "content": {"application/json": {"schema": _inline(body.model_json_schema())}}}
    return extra


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$defs`` references replaced by the definitions (the
    operation's schema has no components section of its own to point into)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node
    return resolve(schema)
