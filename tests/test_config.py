"""Configuration (chatd/config.py) and `chatd check-config`: every mistake is one line naming the
file and the key, exit code 2, no traceback."""

import json
from pathlib import Path

import pytest

from chatd import config as config_mod
from tests.helpers import make_config, run_cli

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"

# (case, TOML text, what the line must name besides the file)
BAD = [
    ("wrong type", '[server]\nport = "8080"\n', "server.port"),
    ("float for int", "[server]\nworker_id = 1.5\n", "server.worker_id"),
    ("bool for int", "[limits]\nrate_burst = true\n", "limits.rate_burst"),
    ("wrong list", '[server]\ncors_origins = "*"\n', "server.cors_origins"),
    ("int for bool", "[log]\naccess_log = 1\n", "log.access_log"),
    ("unknown key", "[server]\nprot = 80\n", "server.prot"),
    ("unknown section", "[serverr]\nport = 80\n", "serverr"),
    ("section not a table", "server = 5\n", "server"),
    ("out of range high", "[server]\nport = 70000\n", "server.port"),
    ("out of range low", "[limits]\nmax_ws_frame = 10\n", "limits.max_ws_frame"),
    ("out of range float", "[server]\nshutdown_timeout = 0.1\n", "server.shutdown_timeout"),
    ("bad choice", '[log]\nlevel = "loud"\n', "log.level"),
    ("bad argon2 cost", '[auth]\nargon2_cost = "tiny"\n', "auth.argon2_cost"),
    ("no login failures allowed", "[auth]\nlogin_failures_per_account = 0\n", "auth.login_failures_per_account"),
    ("zero login failure window", "[auth]\nlogin_failure_window = 0\n", "auth.login_failure_window"),
    ("bad TOML", "[server\nport = 1\n", "TOML"),
    ("bad TOML value", "[server]\nport = \n", "TOML"),
    ("prefix without slash", '[dialects.revolt]\nprefix = "revolt"\n', "dialects.revolt.prefix"),
    ("prefix with trailing slash", '[dialects.revolt]\nprefix = "/revolt/"\n', "dialects.revolt.prefix"),
    ("prefix not a string", "[dialects.groups]\nprefix = 1\n", "dialects.groups.prefix"),
    ("enabled not a bool", '[dialects.sama]\nenabled = "yes"\n', "dialects.sama.enabled"),
    ("unknown dialect", "[dialects.irc]\nenabled = true\n", "dialects.irc"),
    ("dialects not a table", "dialects = 3\n", "dialects"),
]


@pytest.mark.parametrize("case,text,key", BAD, ids=[c[0] for c in BAD])
def test_parse_rejects(tmp_path, case, text, key):
    path = tmp_path / "config.toml"
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.parse(text, path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert key in msg


CLI_BAD = [c for c in BAD if c[0] in {
    "wrong type", "unknown key", "unknown section", "out of range high", "bad choice", "bad TOML",
    "prefix without slash", "unknown dialect",
}]


@pytest.mark.parametrize("case,text,key", CLI_BAD, ids=[c[0] for c in CLI_BAD])
def test_check_config_cli_one_line_exit_2(tmp_path, case, text, key):
    path = tmp_path / "config.toml"
    path.write_text(text)
    r = run_cli("check-config", "--config", path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert str(path) in lines[0] and key in lines[0]


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.toml"
    r = run_cli("check-config", "--config", path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"chatd: {path}: config file not found"]
    # The same for running the server and for every other command.
    for args in (["--config", path], ["admin", "create-token", "--config", path]):
        r = run_cli(*args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and str(path) in r.stderr


def test_unreadable_config_is_one_line(tmp_path):
    r = run_cli("check-config", "--config", tmp_path)  # a directory
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and str(tmp_path) in r.stderr


def test_repo_config_checks_out():
    r = run_cli("check-config", "--config", REPO_CONFIG)
    assert r.returncode == 0, r.stderr
    effective = json.loads(r.stdout)
    assert effective["server"]["port"] == 8080
    assert effective["storage"]["data_dir"] == str(REPO_CONFIG.parent / "data")
    assert effective["dialects"]["revolt"] == {"enabled": True, "prefix": "/revolt"}
    assert set(effective) == {"server", "storage", "log", "limits", "auth", "retention", "dialects"}


def _flat(d: dict, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_repo_config_documents_the_real_defaults(tmp_path):
    """config.toml says its values are the defaults (unless marked): an empty config must agree."""
    documented = dict(_flat(config_mod.to_dict(config_mod.load(REPO_CONFIG))))
    defaults = dict(_flat(config_mod.to_dict(config_mod.parse("", REPO_CONFIG))))
    # A dialect's own options are checked by the dialect, which knows their defaults.
    core_keys = [k for k in documented if k in defaults]
    assert len(core_keys) >= 40
    differ = {k: (documented[k], defaults[k]) for k in core_keys if documented[k] != defaults[k]}
    assert differ == {}


def test_defaults_and_overrides(tmp_path):
    empty = config_mod.parse("", tmp_path / "c.toml")
    assert empty.server.port == 8080 and empty.limits.outbound_queue == 1024
    assert empty.data_dir == (tmp_path / "data").resolve()
    assert all(empty.dialect(name).enabled for name in config_mod.DIALECTS)
    cfg = config_mod.parse(
        '[storage]\ndata_dir = "/abs/where"\n[limits]\nrate_per_second = 5\n'
        '[dialects.sama]\nprefix = "/sama"\nextra_option = 3\n[server]\ncors_origins = ["a", "b"]\n',
        tmp_path / "c.toml",
    )
    assert cfg.data_dir == Path("/abs/where")
    assert cfg.limits.rate_per_second == 5.0 and isinstance(cfg.limits.rate_per_second, float)
    assert cfg.dialect("sama").prefix == "/sama" and cfg.dialect("sama").options["extra_option"] == 3
    assert cfg.server.cors_origins == ("a", "b")
    json.dumps(config_mod.to_dict(cfg))


def test_make_config_helper(tmp_path):
    cfg = make_config(tmp_path, limits={"outbound_queue": 8}, dialects={"sama": {"enabled": True}})
    assert cfg.server.port == 0 and cfg.server.gateway_port == 0
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.auth.argon2_cost == "min" and cfg.log.access_log is False
    assert cfg.limits.outbound_queue == 8
    assert cfg.dialect("sama").enabled and not cfg.dialect("revolt").enabled
    cfg2 = make_config(tmp_path, storage={"commit_batch": 4})
    assert cfg2.storage.commit_batch == 4 and cfg2.data_dir == tmp_path / "data"
