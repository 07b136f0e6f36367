"""A pytest plugin for client test suites (entry point ``pytest11``: loaded once the package is installed).

Fixtures:

- ``gptoss_server``: this server in a thread on a free loopback port with the scripted engine, for one test; an
  ``OfflineServer`` with ``base_url``, ``api_key``, ``urls`` (wire API name -> its client library's base URL, e.g.
  ``urls["openai"]`` for ``openai.OpenAI(base_url=...)``) and ``prefixes`` (wire API name -> its path prefixes);
- ``gptoss_config``: what the server answers (``OfflineConfig``), read from the test's ``gptoss`` marker; override
  this fixture to configure a whole module or suite.

Marker: ``@pytest.mark.gptoss(transcript=..., recording=..., faults=[...], settings={...})`` (see
``server/testing/offline.py``; a first positional argument is the transcript).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from server.testing.offline import OfflineConfig, OfflineServer

MARKER = "gptoss"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(transcript=None, recording=None, faults=None, settings=None): what the gptoss_server fixture's "
        "scripted engine answers (a transcript or a recording), its fault plan and settings overrides",
    )


@pytest.fixture
def gptoss_config(request: pytest.FixtureRequest) -> OfflineConfig:
    from server.testing.offline import OfflineConfig

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return OfflineConfig()
    kwargs = dict(marker.kwargs)
    if marker.args:
        kwargs.setdefault("transcript", marker.args[0])
    return OfflineConfig(**kwargs)


@pytest.fixture
def gptoss_server(gptoss_config: OfflineConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineServer]:
    from server.testing.offline import serve

    with serve(gptoss_config, tmp_path_factory.mktemp("gptoss")) as server:
        yield server
