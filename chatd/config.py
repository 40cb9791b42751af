"""config.toml → frozen dataclasses, validated once at start-up.

Every problem is reported as one `ConfigError` line naming the file and the
dotted key, so `chatd` can print it and exit 2 instead of a traceback.
"""

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

DIALECTS = ("sama", "sockchat", "revolt", "groups", "admin")
# Where each dialect's HTTP routes are mounted unless the config says otherwise (their paths clash).
DEFAULT_PREFIX = {"revolt": "/revolt", "groups": "/groups"}


class ConfigError(Exception):
    pass


def _rule(default, *, min=None, max=None, choices=None):
    return field(default=default, metadata={"min": min, "max": max, "choices": choices})


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1"
    port: int = _rule(8080, min=0, max=65535)
    # The raw WebSocket gateway (SAMA and other WebSocket dialects) listens on its own port.
    gateway_port: int = _rule(8081, min=0, max=65535)
    public_url: str = "http://127.0.0.1:8080"
    worker_id: int = _rule(0, min=0, max=1023)
    shutdown_timeout: float = _rule(8.0, min=0.5, max=60)
    cors_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class StorageConfig:
    data_dir: str = "data"
    map_size_mb: int = _rule(4096, min=16, max=1 << 24)
    commit_batch: int = _rule(256, min=1, max=10000)


@dataclass(frozen=True)
class LogConfig:
    level: str = _rule("info", choices=("debug", "info", "warning", "error"))
    format: str = _rule("text", choices=("text", "json"))
    access_log: bool = True


@dataclass(frozen=True)
class LimitsConfig:
    max_http_body: int = _rule(1 << 20, min=1024, max=1 << 30)
    max_ws_frame: int = _rule(64 << 10, min=256, max=64 << 20)
    max_message_length: int = _rule(4096, min=1, max=1 << 20)
    rate_per_second: float = _rule(50.0, min=0.1, max=1e6)
    rate_burst: int = _rule(200, min=1, max=1_000_000)
    max_connections_per_user: int = _rule(16, min=1, max=10_000)
    outbound_queue: int = _rule(1024, min=8, max=1_000_000)
    heartbeat_interval: float = _rule(25.0, min=0.1, max=3600)
    idle_timeout: float = _rule(120.0, min=0.5, max=86400)
    max_file_size: int = _rule(25 << 20, min=1, max=1 << 40)
    # Memory for history caches (decoded messages, latest pages, read marks, rendered JSON).
    history_cache_mb: int = _rule(64, min=1, max=1 << 20)


@dataclass(frozen=True)
class AuthConfig:
    access_token_ttl: int = _rule(24 * 3600, min=10, max=10 * 365 * 86400)
    refresh_token_ttl: int = _rule(30 * 86400, min=10, max=10 * 365 * 86400)
    # argon2id cost: "interactive" (64 MiB), "moderate" (256 MiB), "sensitive" (1 GiB), or "min" for tests.
    argon2_cost: str = _rule("interactive", choices=("min", "interactive", "moderate", "sensitive"))
    hash_concurrency: int = _rule(2, min=1, max=64)
    file_url_ttl: int = _rule(3600, min=10, max=7 * 86400)
    # Failed password checks allowed per window: per account (from addresses that have not logged in to it
    # before) and per client address (IPv6: per /64), then 429 until the window ends; no hash is computed.
    login_failures_per_account: int = _rule(10, min=1, max=1_000_000)
    login_failures_per_address: int = _rule(50, min=1, max=1_000_000)
    login_failure_window: int = _rule(300, min=1, max=86400)
    # Seconds a password hash may expect to wait for a worker; past this a login or sign-up is refused
    # at once (503). The wait is the hashes ahead times their measured cost, so it adapts to argon2_cost.
    hash_wait_limit: float = _rule(5.0, min=0.1, max=600)


@dataclass(frozen=True)
class RetentionConfig:
    oplog_days: float = _rule(30.0, min=0.001, max=3650)
    prune_interval: float = _rule(3600.0, min=1, max=86400)


@dataclass(frozen=True)
class DialectConfig:
    enabled: bool = True
    prefix: str = ""
    options: types.MappingProxyType = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    log: LogConfig = LogConfig()
    limits: LimitsConfig = LimitsConfig()
    auth: AuthConfig = AuthConfig()
    retention: RetentionConfig = RetentionConfig()
    dialects: types.MappingProxyType = field(default_factory=lambda: types.MappingProxyType({}))

    @property
    def data_dir(self) -> Path:
        p = Path(self.storage.data_dir)
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def dialect(self, name: str) -> DialectConfig:
        return self.dialects.get(name) or DialectConfig(prefix=DEFAULT_PREFIX.get(name, ""))


_SECTIONS = {
    "server": ServerConfig,
    "storage": StorageConfig,
    "log": LogConfig,
    "limits": LimitsConfig,
    "auth": AuthConfig,
    "retention": RetentionConfig,
}


def _check_value(where: str, f: dataclasses.Field, value):
    hint = f.type
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where}: must be one of {', '.join(meta['choices'])}; got {value!r}")
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"{where}: must be at least {meta['min']}; got {value!r}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"{where}: must be at most {meta['max']}; got {value!r}")
    return value


def _build(cls, table: dict, prefix: str, file: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{prefix}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        where = f"{file}: {prefix}.{key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(known)})")
        kwargs[key] = _check_value(where, known[key], value)
    return cls(**kwargs)


def _build_dialect(name: str, table, file: str) -> DialectConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [dialects.{name}] must be a table")
    enabled = table.get("enabled", True)
    prefix = table.get("prefix", DEFAULT_PREFIX.get(name, ""))
    if not isinstance(enabled, bool):
        raise ConfigError(f"{file}: dialects.{name}.enabled: expected bool, got {enabled!r}")
    if not isinstance(prefix, str) or (prefix and (not prefix.startswith("/") or prefix.endswith("/"))):
        raise ConfigError(
            f"{file}: dialects.{name}.prefix: expected \"\" or a path like \"/{name}\", got {prefix!r}"
        )
    options = {k: v for k, v in table.items() if k not in ("enabled", "prefix")}
    return DialectConfig(enabled, prefix, types.MappingProxyType(options))


def parse(text: str, path: Path) -> Config:
    file = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    sections = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            sections[key] = _build(_SECTIONS[key], value, key, file)
        elif key == "dialects":
            if not isinstance(value, dict):
                raise ConfigError(f"{file}: [dialects] must be a table")
            dialects = {}
            for name, table in value.items():
                if name not in DIALECTS:
                    raise ConfigError(f"{file}: dialects.{name}: unknown dialect (known: {', '.join(DIALECTS)})")
                dialects[name] = _build_dialect(name, table, file)
            sections["dialects"] = types.MappingProxyType(dialects)
        else:
            raise ConfigError(f"{file}: {key}: unknown section (known: {', '.join([*_SECTIONS, 'dialects'])})")
    return Config(path=path.resolve(), **sections)


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    return parse(text, path)


def to_dict(config: Config) -> dict:
    """The effective configuration, as `chatd check-config` prints it."""
    out = {name: dataclasses.asdict(getattr(config, name)) for name in _SECTIONS}
    for section in out.values():
        for k, v in section.items():
            if isinstance(v, tuple):
                section[k] = list(v)
    out["storage"]["data_dir"] = str(config.data_dir)
    out["dialects"] = {
        name: {"enabled": d.enabled, "prefix": d.prefix, **dict(d.options)}
        for name in DIALECTS
        for d in [config.dialect(name)]
    }
    return out
