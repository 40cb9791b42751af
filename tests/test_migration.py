"""Data format 1 → 2 (chatd/store/migrations.py) on a data directory written by the format-1
code itself: tests/data/format1.tar.gz, made by tests/data/make_format1.py against d1e0e6d.

The expected result of every table is written out here, from the format-1 records read before
the migration, independently of the migration's code. Then a real server runs on the migrated
fixture and real SAMA clients use it.
"""

import gc
import hashlib
import json
import logging
import struct
import tarfile
import time
from pathlib import Path

import cbor2
import httpx
import lmdb
import pytest

from chatd.store import migrations
from chatd.store.lmdb import Store, StoreError
from tests.dialects.sama.client import connect, device
from tests.helpers import make_config

FIXTURE = Path(__file__).parent / "data" / "format1.tar.gz"
MAP_SIZE = 64 << 20
U64 = struct.Struct(">Q")
EPOCH_MS = 1_704_067_200_000  # snowflakes: ms since then << 22 | worker << 12 | sequence

# View, read history, send, react, upload, invite others, manage channel: a SAMA group's rules.
SAMA_GROUP_ALLOW = 0x2A700001
assert SAMA_GROUP_ALLOW == (1 << 20) | (1 << 21) | (1 << 22) | (1 << 29) | (1 << 27) | (1 << 25) | (1 << 0)

FORMAT1_TABLES = {
    "meta", "userid_user", "username_userid", "email_userid", "phone_userid", "sessionid_session",
    "tokenhash_sessionid", "refreshhash_sessionid", "useridsessionid_", "useriddevice_sessionid",
    "adminhash_admintoken", "convid_conv", "convuserid_member", "useridconvid_", "userpair_convid",
    "convidmsgid_msg", "msgid_convid", "useridclientid_msgid", "useridmsgid_", "useridblockedid_",
    "useridcontactid_contact", "useridopid_op", "userid_lastactivity", "fileid_file", "fileidconvid_",
    "useriddevice_pushsub", "pusheventid_pushevent", "pushid_push",
}
# Kept byte for byte under the same name.
SAME = {
    "email_userid", "phone_userid", "sessionid_session", "tokenhash_sessionid", "refreshhash_sessionid",
    "useridsessionid_", "useriddevice_sessionid", "useridclientid_msgid", "useridmsgid_",
    "useridcontactid_contact", "userid_lastactivity", "fileid_file", "useriddevice_pushsub",
    "pusheventid_pushevent", "pushid_push",
}
# Kept byte for byte under a new name.
RENAMED = {
    "useridconvid_": "useridchanid_",
    "userpair_convid": "userpair_chanid", "msgid_convid": "msgid_chanid", "fileidconvid_": "fileidchanid_",
}
FORMAT2_TABLES = (SAME | set(RENAMED.values()) | {
    "meta", "userid_user", "username_userid", "adminhash_admintoken", "chanid_chan", "chanidmsgid_msg",
    "chanuserid_member", "chanuserid_read",
    "useridotherid_rel", "useridopid_op",
})
ID_TABLES_1 = ("userid_user", "sessionid_session", "convid_conv", "msgid_convid", "fileid_file", "pushid_push")
EVENT_TYPES_1 = {"ConversationCreated", "ConversationUpdated", "ConversationKicked", "MessageCreated",
                 "MessageEdited", "MessagesDeleted", "MessagesRead", "SystemMessage"}


def unpack(dest: Path) -> dict:
    """The fixture's data directory in `dest`; its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(dest, filter="data")
    return json.loads((dest / "manifest.json").read_text())


def read_all(db_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every record of every named database, raw: {table: {key: value}}."""
    env = lmdb.open(str(db_dir), max_dbs=256, readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            names = [key for key, _ in txn.cursor()]
        out = {}
        for name in names:
            db = env.open_db(name, create=False)
            with env.begin() as txn:
                out[name.decode()] = dict(txn.cursor(db=db))
        return out
    finally:
        env.close()


def decoded(rows: dict[bytes, bytes]) -> dict[bytes, object]:
    return {k: cbor2.loads(v) for k, v in rows.items()}


def ms_of(snowflake: int) -> int:
    return (snowflake >> 22) + EPOCH_MS


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def store_log():
    """Records of the `chatd.store` logger (works with or without pytest's logging plugin)."""
    logger = logging.getLogger("chatd.store")
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- expected format-2 records, from the format-1 ones ----------------------------------------------


def expected_channel(conv: dict) -> dict:
    out = {k: v for k, v in conv.items() if k != "type"}
    if conv["type"] == "u":
        out["kind"] = "dm"
    else:
        assert conv["type"] == "g"
        out["kind"] = "group"
        out["default_allow"] = SAMA_GROUP_ALLOW
    return out


def expected_message(msg: dict) -> dict:
    out = {k: v for k, v in msg.items() if k not in ("x", "system")}
    if "x" in msg:
        out["data"] = msg["x"]
    if msg.get("system") is True:
        out["kind"] = "system"
    return out


def expected_op(event: dict) -> dict:
    renamed = {"ConversationCreated": "ChannelCreated", "ConversationUpdated": "ChannelUpdated",
               "ConversationKicked": "ChannelKicked"}
    kind = event["type"]
    if kind in renamed:
        out = {k: v for k, v in event.items() if k not in ("type", "conversation")}
        out["type"] = renamed[kind]
        out["channel"] = expected_channel(event["conversation"])
        return out
    if kind in ("MessageCreated", "MessageEdited"):
        return {**event, "message": expected_message(event["message"])}
    return event


def check_fixture_has_everything(before: dict, manifest: dict) -> None:
    """The fixture holds every kind of format-1 record (so the comparisons below mean something)."""
    assert set(before) == FORMAT1_TABLES
    assert all(before[t] for t in FORMAT1_TABLES), [t for t in FORMAT1_TABLES if not before[t]]
    assert cbor2.loads(before["meta"][b"format_version"]) == 1
    users = decoded(before["userid_user"]).values()
    assert sum(1 for u in users if u.get("password_hash")) >= 4
    assert all(u.get(f) for u in users if u.get("password_hash")
               for f in ("email", "phone", "first_name", "last_name", "extra"))
    convs = decoded(before["convid_conv"]).values()
    assert sorted(c["type"] for c in convs) == ["g", "g", "u"]
    assert all(c.get("name") and c.get("description") and c.get("extra") for c in convs if c["type"] == "g")
    msgs = list(decoded(before["convidmsgid_msg"]).values())
    assert any("x" in m and not m.get("system") for m in msgs)
    assert any(m.get("attachments") for m in msgs) and any(m.get("client_id") for m in msgs)
    assert {m["x"]["type"] for m in msgs if m.get("system")} == {
        "added_participant", "removed_participant", "left_participants"}
    assert {e["type"] for e in decoded(before["useridopid_op"]).values()} == EVENT_TYPES_1
    blocks = {(k[:8], k[8:]) for k in before["useridblockedid_"]}
    assert any((b, a) in blocks for a, b in blocks) and any((b, a) not in blocks for a, b in blocks)
    assert {s["platform"] for s in decoded(before["useriddevice_pushsub"]).values()} == {"web", "ios"}
    assert len(before["adminhash_admintoken"]) == len(manifest["admin_tokens"]) >= 2
    sessions = decoded(before["sessionid_session"]).values()
    assert sum(1 for s in sessions if s.get("refresh_hash")) >= 2


def check_migrated(before: dict, after: dict, t0: int, t1: int, manifest: dict) -> None:
    """`after` is exactly `before` in format 2 (`t0`..`t1`: when the migration ran, Unix ms)."""
    assert set(after) == FORMAT2_TABLES

    # Unchanged and renamed tables: byte for byte.
    for name in SAME:
        assert after[name] == before[name], name
    for old, new in RENAMED.items():
        assert after[new] == before[old], (old, new)

    # Members: the same rows without last_read, which moves to chanuserid_read (none for 0).
    assert after["chanuserid_member"].keys() == before["convuserid_member"].keys()
    reads = {}
    for key, raw in before["convuserid_member"].items():
        old = cbor2.loads(raw)
        assert cbor2.loads(after["chanuserid_member"][key]) == {k: v for k, v in old.items() if k != "last_read"}
        if old.get("last_read"):
            reads[key] = U64.pack(old["last_read"])
    assert after["chanuserid_read"] == reads and reads

    # meta: only the version changes.
    assert {k: v for k, v in after["meta"].items() if k != b"format_version"} == \
           {k: v for k, v in before["meta"].items() if k != b"format_version"}
    assert cbor2.loads(after["meta"][b"format_version"]) == 2

    # Conversations → channels, same keys.
    assert after["chanid_chan"].keys() == before["convid_conv"].keys()
    for key, raw in before["convid_conv"].items():
        assert cbor2.loads(after["chanid_chan"][key]) == expected_channel(cbor2.loads(raw)), key.hex()
    kinds = {manifest["conversations"][n]: cbor2.loads(after["chanid_chan"][U64.pack(manifest["conversations"][n])])
             for n in ("dm", "g1", "g2")}
    assert [c["kind"] for c in kinds.values()] == ["dm", "group", "group"]
    assert "default_allow" not in kinds[manifest["conversations"]["dm"]]

    # Messages, same keys.
    assert after["chanidmsgid_msg"].keys() == before["convidmsgid_msg"].keys()
    for key, raw in before["convidmsgid_msg"].items():
        new = cbor2.loads(after["chanidmsgid_msg"][key])
        assert new == expected_message(cbor2.loads(raw)), key.hex()
        assert "x" not in new and "system" not in new and new.get("kind") in (None, "system")

    # Op log: same keys; conversation events renamed, messages transformed, the rest byte for byte.
    assert after["useridopid_op"].keys() == before["useridopid_op"].keys()
    tags = set()
    for key, raw in before["useridopid_op"].items():
        old = cbor2.loads(raw)
        new = cbor2.loads(after["useridopid_op"][key])
        assert new == expected_op(old), key.hex()
        if old["type"] not in ("ConversationCreated", "ConversationUpdated", "ConversationKicked",
                               "MessageCreated", "MessageEdited"):
            assert after["useridopid_op"][key] == raw
        tags.add(new["type"])
    assert tags == {"ChannelCreated", "ChannelUpdated", "ChannelKicked", "MessageCreated", "MessageEdited",
                    "MessagesDeleted", "MessagesRead", "SystemMessage"}

    # Blocks → relationships, in both directions.
    blocks = {(k[:8], k[8:]) for k in before["useridblockedid_"]}
    want = {}
    for a, b in blocks:
        want[a + b] = "blocked"
    for a, b in blocks:
        if (b, a) not in blocks:
            want[b + a] = "blocked_by"
    rels = decoded(after["useridotherid_rel"])
    assert {k: v["status"] for k, v in rels.items()} == want
    stamps = {v["updated_at"] for v in rels.values()}
    assert len(stamps) == 1 and t0 <= stamps.pop() <= t1
    assert all(set(v) == {"status", "updated_at"} for v in rels.values())
    uid = {login: u["id"] for login, u in manifest["users"].items()}

    def rel(a, b):
        return rels[U64.pack(uid[a]) + U64.pack(uid[b])]["status"]

    assert (rel("dave", "erin"), rel("erin", "dave")) == ("blocked", "blocked_by")
    assert (rel("carol", "erin"), rel("erin", "carol")) == ("blocked", "blocked")
    assert len(rels) == 4

    # Admin tokens get users.
    floor = max(U64.unpack(max(before[t]))[0] for t in ID_TABLES_1)
    old_users = before["userid_user"]
    assert {k: v for k, v in after["userid_user"].items() if k in old_users} == old_users
    new_user_keys = sorted(set(after["userid_user"]) - set(old_users))
    assert len(new_user_keys) == len(before["adminhash_admintoken"])
    assert after["adminhash_admintoken"].keys() == before["adminhash_admintoken"].keys()
    token_user = {}
    for key, raw in before["adminhash_admintoken"].items():
        old = cbor2.loads(raw)
        new = cbor2.loads(after["adminhash_admintoken"][key])
        assert new == {**old, "user_id": new["user_id"]}
        token_user[old["id"]] = (old, new["user_id"])
    user_ids = [u for _, u in token_user.values()]
    assert sorted(U64.pack(u) for u in user_ids) == new_user_keys  # distinct, and stored
    squatted = manifest["admin_tokens"][0]["id"]  # a user took "ADMIN-<this token's id>"
    assert manifest["users"]["squatter"]["login"].casefold() == f"admin-{squatted}"
    new_logins = {}
    for token_id, (token, user_id) in token_user.items():
        assert user_id > floor
        assert (user_id >> 12) & 0x3FF == 0  # worker 0
        assert t0 <= ms_of(user_id) <= t1 or ms_of(user_id) <= ms_of(floor) + 1
        login = f"admin-{token_id}-2" if token_id == squatted else f"admin-{token_id}"
        user = cbor2.loads(after["userid_user"][U64.pack(user_id)])
        assert t0 <= user["updated_at"] <= t1
        assert user == {"id": user_id, "login": login, "created_at": token["created_at"],
                        "updated_at": user["updated_at"], "first_name": token["name"], "roles": ["admin"],
                        "flags": 1}
        new_logins[login.casefold().encode()] = U64.pack(user_id)
    assert {t["id"]: t["name"] for t in manifest["admin_tokens"]} == \
           {tid: tok["name"] for tid, (tok, _) in token_user.items()}
    assert after["username_userid"] == {**before["username_userid"], **new_logins}
    assert len(after["username_userid"]) == len(before["username_userid"]) + len(new_logins)


# -- the record test --------------------------------------------------------------------------------


def test_format1_fixture_migrates_record_by_record(tmp_path, store_log):
    data_dir = tmp_path / "data"
    manifest = unpack(data_dir)
    before = read_all(data_dir / "db")
    check_fixture_has_everything(before, manifest)

    t0 = int(time.time() * 1000)
    backup = migrations.upgrade(data_dir, map_size=MAP_SIZE)
    t1 = int(time.time() * 1000)
    assert backup is not None, "a format-1 directory must be migrated"
    after = read_all(data_dir / "db")
    check_migrated(before, after, t0, t1, manifest)

    # The backup: a readable format-1 environment holding the original records, named in the log.
    assert backup.parent == data_dir / "backups"
    assert list((data_dir / "backups").iterdir()) == [backup]
    assert backup.name.startswith("format-1-") and len(backup.name) == len("format-1-20240101T000000Z")
    assert (backup / "data.mdb").is_file()
    assert read_all(backup) == before
    warnings = [r for r in store_log if r.levelno == logging.WARNING and str(backup) in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in store_log]
    assert not [r for r in store_log if r.levelno >= logging.ERROR], [r.getMessage() for r in store_log]

    # Idempotent: a second run finds format 2 and changes nothing.
    assert migrations.upgrade(data_dir, map_size=MAP_SIZE) is None
    assert read_all(data_dir / "db") == after
    assert list((data_dir / "backups").iterdir()) == [backup]


def test_fresh_and_current_directories_are_left_alone(tmp_path):
    assert migrations.upgrade(tmp_path / "nothing", map_size=MAP_SIZE) is None
    assert not (tmp_path / "nothing").exists()
    data_dir = tmp_path / "data"
    unpack(data_dir)
    migrations.upgrade(data_dir, map_size=MAP_SIZE)
    once = read_all(data_dir / "db")
    assert migrations.upgrade(data_dir, map_size=MAP_SIZE) is None
    assert read_all(data_dir / "db") == once


def test_undecodable_records_are_copied_and_logged(tmp_path, store_log):
    data_dir = tmp_path / "data"
    unpack(data_dir)
    bad = b"\xff\x00 not cbor"
    env = lmdb.open(str(data_dir / "db"), max_dbs=64, map_size=MAP_SIZE)
    with env.begin(write=True) as txn:
        msgs = env.open_db(b"convidmsgid_msg", txn=txn, create=False)
        key = next(iter(txn.cursor(db=msgs)))[0]
        txn.put(key, bad, db=msgs)
        convs = env.open_db(b"convid_conv", txn=txn, create=False)
        txn.put(U64.pack(1), cbor2.dumps({"id": 1, "type": "weird"}), db=convs)
    env.close()
    before = read_all(data_dir / "db")
    assert migrations.upgrade(data_dir, map_size=MAP_SIZE) is not None
    after = read_all(data_dir / "db")
    assert after["chanidmsgid_msg"][key] == bad
    assert after["chanid_chan"][U64.pack(1)] == before["convid_conv"][U64.pack(1)]
    assert len(after["chanidmsgid_msg"]) == len(before["convidmsgid_msg"])
    errors = [r for r in store_log if r.levelno == logging.ERROR]
    assert len(errors) == 2, [r.getMessage() for r in store_log]


def test_a_failed_migration_changes_nothing_and_the_next_start_migrates(tmp_path, monkeypatch):
    """One write transaction: an error half-way (here: after every table but the admin users was
    rewritten) leaves format 1 as it was; the next start migrates it."""
    data_dir = tmp_path / "data"
    manifest = unpack(data_dir)
    before = read_all(data_dir / "db")

    def crash(*args):
        raise RuntimeError("crash half-way")

    with monkeypatch.context() as patch:
        patch.setattr(migrations, "_admin_users", crash)
        with pytest.raises(StoreError, match="crash half-way"):
            migrations.upgrade(data_dir, map_size=MAP_SIZE)
    assert read_all(data_dir / "db") == before

    # A map too small for old and new tables side by side: refused cleanly, nothing changed.
    with pytest.raises(StoreError, match="needs a larger map"):
        migrations.upgrade(data_dir, map_size=(data_dir / "db" / "data.mdb").stat().st_size)
    assert read_all(data_dir / "db") == before

    t0 = int(time.time() * 1000)
    assert migrations.upgrade(data_dir, map_size=MAP_SIZE) is not None
    check_migrated(before, read_all(data_dir / "db"), t0, int(time.time() * 1000), manifest)


def test_newer_format_is_refused_and_untouched(tmp_path):
    data_dir = tmp_path / "data"
    unpack(data_dir)
    env = lmdb.open(str(data_dir / "db"), max_dbs=64, map_size=MAP_SIZE)
    with env.begin(write=True) as txn:
        txn.put(b"format_version", cbor2.dumps(3), db=env.open_db(b"meta", txn=txn, create=False))
    env.close()
    before = read_all(data_dir / "db")
    digest = hashlib.sha256((data_dir / "db" / "data.mdb").read_bytes()).hexdigest()

    assert migrations.upgrade(data_dir, map_size=MAP_SIZE) is None
    with pytest.raises(StoreError):
        Store(data_dir, map_size=MAP_SIZE)
    gc.collect()  # the refused Store's environment, if it kept one open
    assert hashlib.sha256((data_dir / "db" / "data.mdb").read_bytes()).hexdigest() == digest
    assert read_all(data_dir / "db") == before
    assert not (data_dir / "backups").exists()


# -- a live server on the migrated fixture ----------------------------------------------------------


@pytest.fixture
def config(tmp_path):
    unpack(tmp_path / "data")  # the server's data directory (make_config: tmp_path/data)
    return make_config(tmp_path, dialects={"sama": {"enabled": True}}, retention={"oplog_days": 3650})


def _by_id(items) -> dict:
    return {item["_id"]: item for item in items}


@pytest.mark.deadline(60)
async def test_live_server_on_the_migrated_fixture(server, nursery, config):
    m = json.loads((config.data_dir / "manifest.json").read_text())
    backups = list((config.data_dir / "backups").iterdir())
    assert len(backups) == 1 and backups[0].name.startswith("format-1-")  # migrated at start-up
    uid = {login: str(u["id"]) for login, u in m["users"].items()}
    conv = {name: str(cid) for name, cid in m["conversations"].items()}
    mid = {name: str(i) for name, i in m["messages"].items()}
    users = m["users"]

    # Log in with a fixture user's password; connect with an old access token.
    alice = await device(server, nursery, "alice", "alice-new-phone", password=users["alice"]["password"])
    for field in ("email", "phone", "first_name", "last_name", "avatar_url"):
        assert alice.user[field] == users["alice"][field], field
    assert alice.user_id == uid["alice"]
    bob_session = next(s for s in m["sessions"] if s["login"] == "bob")
    bob = await connect(server, nursery, bob_session["access_token"], bob_session["device_id"], "bob")
    bob.user_id = uid["bob"]
    # An old refresh token still gets a new session for its device.
    laptop = next(s for s in m["sessions"] if s["device_id"] == "alice-laptop")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        http.cookies.set("refresh_token", laptop["refresh_token"])
        r = await http.post("/login", json={"device_id": "alice-laptop"})
        assert r.status_code == 200, r.text
        assert r.json()["user"]["_id"] == uid["alice"]

    # Conversations: names, participants, last message, unread.
    convs = _by_id((await alice.ok("conversation_list", {"limit": 100}))["conversations"])
    assert set(convs) == set(conv.values())
    dm, g1, g2 = convs[conv["dm"]], convs[conv["g1"]], convs[conv["g2"]]
    assert dm["type"] == "u" and dm["opponent_id"] == uid["bob"]
    assert set(dm["participants"]) == {uid["alice"], uid["bob"]}
    assert dm["last_message"]["body"] == "did you see it?" and dm["unread_messages_count"] == 0
    assert (g1["type"], g1["name"], g1["description"]) == ("g", "Project X", "The project group")
    assert set(g1["participants"]) == {uid["alice"], uid["bob"]}  # carol removed, dave left
    assert g1["last_message"]["body"] == "dave has left the group" and g1["unread_messages_count"] == 2
    assert (g2["type"], g2["name"], g2["description"]) == ("g", "Weekend", "plans")
    assert set(g2["participants"]) == {uid[n] for n in ("alice", "bob", "carol", "erin")}
    assert g2["last_message"]["body"] == "yes" and g2["owner_id"] == uid["bob"]
    bob_convs = _by_id((await bob.ok("conversation_list", {"limit": 100}))["conversations"])
    assert {c: bob_convs[conv[c]]["unread_messages_count"] for c in ("dm", "g1", "g2")} == \
           {"dm": 1, "g1": 0, "g2": 2}  # bob hid one of g2's three messages for himself

    # History: x, attachments, system messages, edits, deletions.
    history = _by_id((await alice.ok("message_list", {"cid": conv["dm"], "limit": 50}))["messages"])
    assert set(history) == {mid[n] for n in ("dm_plain", "dm_x", "dm_attachment", "dm_client_id", "dm_unread")}
    assert history[mid["dm_x"]]["x"] == {"kind": "location", "lat": 52.5, "lon": 13.4}
    assert "x" not in history[mid["dm_plain"]] and history[mid["dm_plain"]]["body"] == "hello bob"
    assert history[mid["dm_attachment"]]["attachments"] == [{
        "file_id": str(m["file"]["id"]), "file_name": "photo.png", "size": m["file"]["size"],
        "content_type": "image/png"}]
    assert history[mid["dm_attachment"]]["status"] == "read" and history[mid["dm_unread"]]["status"] == "sent"
    g1_history = (await bob.ok("message_list", {"cid": conv["g1"], "limit": 50}))["messages"]
    by_id = _by_id(g1_history)
    assert by_id[mid["g1_x"]]["x"] == {"pinned": True}
    assert by_id[mid["g1_edited"]]["body"] == "typo here" and "updated_at" in by_id[mid["g1_edited"]]
    assert mid["g1_deleted_for_all"] not in by_id
    system = [(msg["x"]["type"], msg["x"]["user"]["_id"]) for msg in reversed(g1_history)
              if isinstance(msg.get("x"), dict) and "user" in msg["x"]]
    assert system == [("added_participant", uid["dave"]), ("removed_participant", uid["carol"]),
                      ("left_participants", uid["dave"])]
    g2_bob = _by_id((await bob.ok("message_list", {"cid": conv["g2"], "limit": 50}))["messages"])
    g2_alice = _by_id((await alice.ok("message_list", {"cid": conv["g2"], "limit": 50}))["messages"])
    assert mid["g2_hidden_by_bob"] not in g2_bob and mid["g2_hidden_by_bob"] in g2_alice
    assert g2_bob[mid["g2_x"]]["x"] == {"poll": ["yes", "no"]}

    # The op log of what each missed while offline.
    async def op_log(client) -> list[dict]:
        logs = (await client.ok("op_log_list", {"created_at": {"gt": 0}, "limit": 1000}))["logs"]
        return [entry["packet"] for entry in logs]

    bob_ops = await op_log(bob)
    kinds = {next(iter(p)) for p in bob_ops}
    assert {"message", "message_edit", "message_delete", "system_message"} <= kinds
    sys_x = [p["system_message"]["x"] for p in bob_ops if "system_message" in p]
    assert any("conversation_created" in x for x in sys_x) and any("conversation_updated" in x for x in sys_x)
    assert {"call": "ring"} in sys_x
    assert any(p.get("message_edit", {}).get("body") == "typo here" for p in bob_ops)
    assert any(p.get("message", {}).get("x") == {"kind": "location", "lat": 52.5, "lon": 13.4} for p in bob_ops)
    alice_ops = await op_log(alice)
    assert any(p.get("message_read", {}).get("from") == uid["bob"] for p in alice_ops)
    carol = await device(server, nursery, "carol", "carol-new", password=users["carol"]["password"])
    carol_ops = await op_log(carol)
    kicked = [p["system_message"]["x"]["conversation_kicked"] for p in carol_ops
              if "conversation_kicked" in p.get("system_message", {}).get("x", {})]
    assert [k["_id"] for k in kicked] == [conv["g1"]]

    # Contacts (matched to users by email and phone).
    contacts = (await alice.ok("contact_list", {}))["contacts"]
    bobby = next(c for c in contacts if c.get("first_name") == "Bobby")
    assert len(contacts) == 2 and bobby["company"] == "Acme"
    assert bobby["email"] == [{"type": "work", "value": "bob@example.com", "matched_user_id": uid["bob"]}]
    assert bobby["phone"] == [{"type": "cell", "value": "+15550002", "matched_user_id": uid["bob"]}]
    [archer] = (await bob.ok("contact_list", {}))["contacts"]
    assert archer["phone"][0]["matched_user_id"] == uid["alice"]

    # Block lists (one-way dave → erin, mutual carol ↔ erin).
    dave = await device(server, nursery, "dave", "dave-new", password=users["dave"]["password"])
    erin = await device(server, nursery, "erin", "erin-new", password=users["erin"]["password"])
    assert (await carol.ok("list_blocked_users"))["users"] == [uid["erin"]]
    assert (await dave.ok("list_blocked_users"))["users"] == [uid["erin"]]
    assert (await erin.ok("list_blocked_users"))["users"] == [uid["carol"]]
    assert (await bob.ok("list_blocked_users"))["users"] == []

    # Push subscriptions.
    [web] = (await alice.ok("push_subscription_list", {}))["subscriptions"]
    assert (web["platform"], web["device_udid"], web["web_endpoint"]) == (
        "web", "alice-browser", "https://push.example.com/alice")
    [ios] = (await bob.ok("push_subscription_list", {}))["subscriptions"]
    assert (ios["platform"], ios["device_token"]) == ("ios", "apns-token-bob")

    # The uploaded file, downloaded by the other side of the conversation it was shared in.
    [url] = (await bob.ok("get_file_urls", {"file_ids": [str(m["file"]["id"])]}))["file_urls"]
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == m["file"]["sha256"]
    assert r.headers["content-type"] == "image/png"

    for client in (alice, bob, carol, dave, erin):
        await client.close()
