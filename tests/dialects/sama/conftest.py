"""Fixtures for the SAMA dialect tests: the `config` fixture with the sama dialect enabled.

`@pytest.mark.config(...)` overrides still apply (as in tests/conftest.py).
"""

import pytest

from tests.helpers import make_config


@pytest.fixture
def config(tmp_path, request):
    marker = request.node.get_closest_marker("config")
    sections = dict(marker.kwargs) if marker else {}
    dialects = dict(sections.pop("dialects", {}))
    dialects["sama"] = {"enabled": True, **dialects.get("sama", {})}
    return make_config(tmp_path, dialects=dialects, **sections)
