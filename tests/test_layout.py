"""The layout shows the architecture: every registered wire API is a package with its settings section, contract
cases and a README row; the core names no provider; a new wire API needs only its package and a registry entry."""

from __future__ import annotations

import ast
import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from routes import WIRE_APIS
from routes.provider import Provider
from server.section import ProviderSection
from server.settings import Settings, compose_settings, load_settings
from tests.cases import all_cases
from tests.helpers import API_KEY, REPO, scripted_settings, threaded_server

PACKAGE_FILES = ("__init__.py", "settings.py", "ids.py", "errors.py", "request.py", "router.py")


@pytest.mark.parametrize("provider", WIRE_APIS, ids=[p.name for p in WIRE_APIS])
def test_each_wire_api_is_a_complete_package(provider: Provider) -> None:
    package = REPO / "routes" / provider.name
    missing = [f for f in PACKAGE_FILES if not (package / f).is_file()]
    assert not missing, f"routes/{provider.name}/ lacks {missing}"
    assert provider.http == f"routes.{provider.name}.router"
    http = provider.http_side()
    assert callable(http.router) and callable(http.render_error) and callable(http.prefixes)
    for path in package.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, f"{path} is too long to read as one piece"


@pytest.mark.parametrize("provider", WIRE_APIS, ids=[p.name for p in WIRE_APIS])
def test_each_wire_api_has_its_settings_section(provider: Provider) -> None:
    section = Settings().providers.section(provider.name)
    assert type(section) is provider.settings and isinstance(section, ProviderSection)
    assert section.enabled


@pytest.mark.parametrize("provider", WIRE_APIS, ids=[p.name for p in WIRE_APIS])
def test_each_wire_api_has_contract_cases(provider: Provider) -> None:
    assert (REPO / "tests" / "cases" / f"{provider.name}.py").is_file()
    names = [c.name for c in all_cases()]
    assert any(n == provider.name or n.startswith(provider.name + "-") for n in names), names


@pytest.mark.parametrize("provider", WIRE_APIS, ids=[p.name for p in WIRE_APIS])
def test_each_wire_api_has_a_readme_row(provider: Provider) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Provider routes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "| Provider |" not in line]
    assert any(f"`providers.{provider.name}`" in row for row in rows), f"no README row for {provider.name}"


def test_the_core_names_no_provider() -> None:
    """``server/`` holds no provider's name in code (strings, identifiers, attribute names)."""
    names = {p.name for p in WIRE_APIS}
    offenders = []
    for path in sorted((REPO / "server").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            words: list[str] = []
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.startswith("vllm:"):
                # (vLLM's metric names are vLLM's: "vllm:e2e_request_latency_seconds" is no provider)
                if node is not getattr(tree.body[0], "value", None):  # the module docstring may explain
                    words = re.findall(r"[a-z0-9]+", node.value.lower())
            elif isinstance(node, ast.Name):
                words = [node.id.lower()]
            elif isinstance(node, ast.Attribute):
                words = [node.attr.lower()]
            elif isinstance(node, ast.ClassDef | ast.FunctionDef):
                words = re.findall(r"[a-z0-9]+", node.name.lower())
            hits = names.intersection(words)
            if isinstance(node, ast.Constant):
                hits.discard("openai")  # in prose it names the company ("trained by OpenAI"), not the wire API
            if hits:
                offenders.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')} {sorted(hits)}")
    assert not offenders, offenders


TOY_SETTINGS = """
from __future__ import annotations

from server.section import ProviderSection


class ToySettings(ProviderSection):
    greeting: str = "toy"
"""

TOY_INIT = """
from routes.provider import Provider
from toyapi.settings import ToySettings

PROVIDER = Provider(name="toy", settings=ToySettings, http="toyapi.router", paths="/toy/chat")
"""

TOY_ROUTER = """
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from routes.shared.run import Ctx, complete
from server.context import ServerContext
from server.errors import ServerError
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.types import ChatMessage, ChatRequest, SamplingOptions


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    return Response(dumps({"toy_error": exc.message}), status_code=exc.status, media_type="application/json")


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return ("/toy",)


def authenticate(request: Request, ctx: Ctx) -> None:
    require_key(ctx.keys, bearer_token(request), missing="no key", invalid="bad key")


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post("/toy/chat")
    async def chat(request: Request, ctx: Ctx) -> Response:
        body = await read_json_object(request, ctx.settings.limits.max_body_bytes)
        chat = ChatRequest(messages=[ChatMessage(role="user", content=str(body["say"]))], sampling=SamplingOptions())
        result = await complete(ctx, request, await ctx.service.prepare(chat))
        greeting = ctx.settings.providers.section("toy").greeting
        return Response(dumps({greeting: result.content}), media_type="application/json")

    return api
"""


def test_a_toy_wire_api_needs_only_its_package_and_a_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "toyapi"
    package.mkdir()
    for name, text in (("__init__.py", TOY_INIT), ("settings.py", TOY_SETTINGS), ("router.py", TOY_ROUTER)):
        (package / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = importlib.import_module("toyapi")
    try:
        wire_apis = (*WIRE_APIS, toy.PROVIDER)  # the registry tuple with one more entry
        settings_cls = compose_settings(wire_apis)
        base = scripted_settings(tmp_path).model_dump()
        monkeypatch.setenv("GPTOSS_PROVIDERS__TOY__GREETING", "howdy")  # env names follow the tree
        settings = load_settings(REPO / "configs" / "scripted.yaml", base, settings_cls=settings_cls)
        assert settings.providers.section("toy").greeting == "howdy"
        assert settings.model_dump()["providers"]["toy"] == {"enabled": True, "greeting": "howdy"}
        with threaded_server(settings, wire_apis=wire_apis) as live:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            r = requests.post(f"{live.base_url}/toy/chat", json={"say": "hello toy"}, headers=auth, timeout=30)
            assert r.status_code == 200 and r.json() == {"howdy": "hello toy"}
            r = requests.post(f"{live.base_url}/toy/chat", json={"say": "x"}, timeout=30)
            assert r.status_code == 401 and r.json() == {"toy_error": "no key"}
            r = requests.get(f"{live.base_url}/toy/nowhere", headers=auth, timeout=30)
            assert r.status_code == 404 and "toy_error" in r.json()  # its prefix, its envelope
            r = requests.get(f"{live.base_url}/v1/models", headers=auth, timeout=30)
            assert r.status_code == 200  # the registered wire APIs are unaffected
    finally:
        for name in [m for m in sys.modules if m == "toyapi" or m.startswith("toyapi.")]:
            del sys.modules[name]
