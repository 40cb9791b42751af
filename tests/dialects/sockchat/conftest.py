"""Fixtures for the sockchat tests: a server with the sockchat (and sama) dialects enabled.

`@pytest.mark.config(...)` overrides apply as in tests/conftest.py; sockchat
options go in `dialects={"sockchat": {...}}`.
"""

import pytest

from tests.helpers import make_config


@pytest.fixture
def config(tmp_path, request):
    marker = request.node.get_closest_marker("config")
    sections = dict(marker.kwargs) if marker else {}
    dialects = dict(sections.pop("dialects", {}))
    for name in ("sockchat", "sama"):
        dialects[name] = {"enabled": True, **dialects.get(name, {})}
    return make_config(tmp_path, dialects=dialects, **sections)
