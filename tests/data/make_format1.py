"""Make tests/data/format1.tar.gz: a chatd data directory in data format 1, written by the
format-1 code itself (commit d1e0e6d), for tests/test_migration.py.

This script must run against d1e0e6d's code, not today's: it drives that commit's real services
(`chatd.cli.with_core`, `chatd.core.services.Core`), so every record has exactly the shape the
format-1 server wrote. From the repository root:

    git worktree add /tmp/wt-format1 d1e0e6d
    PYTHONPATH=/tmp/wt-format1 .venv/bin/python tests/data/make_format1.py tests/data
    git worktree remove --force /tmp/wt-format1

It writes OUTDIR/format1.tar.gz holding `db/data.mdb` (a compacted copy, no lock file),
`files/` (the uploaded blobs) and `manifest.json` (the clear passwords and tokens, the ids of
what was made). Tokens and ids differ on every run; the tests read them from the manifest.

What it makes: five users with passwords, emails, phones, names, avatars and `extra`, one more
user without a password whose login takes an admin token's `admin-<id>` name; sessions with
access and refresh tokens on several devices (valid for decades, so the fixture does not
expire); a private conversation and two groups (name, description, `extra`); plain messages,
messages with `x`, with an uploaded attachment and with a client id; system messages (added,
removed, left); an edit, a delete for everyone, a delete for oneself, read marks, transient
system messages; op-log entries of every logged event type (nobody is online, so everything is
logged); contacts; blocks (one one-way, one mutual pair); web and ios push subscriptions, a push
event and queued pushes; two admin tokens; last-activity rows.
"""

import hashlib
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import lmdb
import trio

from chatd.cli import with_core
from chatd.core import admin_tokens
from chatd.core.models import Attachment
from chatd.store import keys
from chatd.store.tables import FORMAT_VERSION
from tests.helpers import make_config

assert FORMAT_VERSION == 1, "run this against the format-1 code (d1e0e6d): see the docstring"

YEAR_S = 365 * 86400
# Access tokens valid for 50 years and refresh tokens for 10 (the config's maximum).
ACCESS_TTL_S = 50 * YEAR_S
REFRESH_TTL_S = 10 * YEAR_S
# A small file of known bytes (a PNG signature and some pattern).
FILE_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"chatd format 1 fixture\n"

USERS = {
    "alice": dict(password="alice-pw-1", email="alice@example.com", phone="+15550001", first_name="Alice",
                  last_name="Archer", avatar_url="https://example.com/a.png", extra={"organization_id": "org-1"}),
    "bob": dict(password="bob-pw-2", email="Bob@Example.com", phone="+15550002", first_name="Bob",
                last_name="Baker", avatar_url="https://example.com/b.png", extra={"organization_id": "org-1"}),
    "carol": dict(password="carol-pw-3", email="carol@example.com", phone="+15550003", first_name="Carol",
                  last_name="Cook", extra={"title": "QA"}),
    "dave": dict(password="dave-pw-4", email="dave@example.com", phone="+15550004", first_name="Dave",
                 last_name="Dent", avatar_url="https://example.com/d.png", extra={"organization_id": "org-2"}),
    "erin": dict(password="erin-pw-5", email="erin@example.com", phone="+15550005", first_name="Erin",
                 last_name="Eve", extra={"nick": "e"}),
}


async def make(core, out: dict) -> None:
    ids: dict[str, int] = {}
    for login, fields in USERS.items():
        user = await core.accounts.create(login, **fields)
        ids[login] = user.id
        out["users"][login] = {"id": user.id, "login": user.login, **{k: v for k, v in fields.items()}}

    # Sessions: access + refresh tokens on several devices (one without a refresh token).
    for login, device, refresh, dialect in (("alice", "alice-phone", True, "sama"), ("alice", "alice-laptop", True, "sama"),
                                            ("bob", "bob-phone", True, "sama"), ("carol", "carol-web", False, "sama"),
                                            ("dave", "dave-tab", True, "sockchat")):
        issued = await core.sessions.create(ids[login], device, refresh=refresh, dialect=dialect, ttl=ACCESS_TTL_S)
        out["sessions"].append({"login": login, "user_id": ids[login], "device_id": device,
                                "session_id": issued.session.id, "access_token": issued.access_token,
                                "refresh_token": issued.refresh_token, "dialect": dialect})

    # Push subscriptions first, so messages to offline people queue notifications.
    web = await core.push.subscribe(ids["alice"], platform="web", device_udid="alice-browser",
                                    web_endpoint="https://push.example.com/alice", web_key_auth="auth-alice",
                                    web_key_p256dh="p256dh-alice")
    ios = await core.push.subscribe(ids["bob"], platform="ios", device_udid="bob-iphone",
                                    device_token="apns-token-bob")
    out["push_subscriptions"] = [{"login": "alice", "id": web.id, "device_udid": "alice-browser", "platform": "web"},
                                 {"login": "bob", "id": ios.id, "device_udid": "bob-iphone", "platform": "ios"}]

    # An uploaded file (its bytes under files/).
    [file] = await core.files.create(ids["alice"], [{"name": "photo.png", "size": len(FILE_BYTES),
                                                     "content_type": "image/png"}])

    async def chunks():
        yield FILE_BYTES[:100]
        yield FILE_BYTES[100:]

    file = await core.files.upload(file, "image/png", chunks())
    out["file"] = {"id": file.id, "owner": "alice", "name": file.name, "size": file.size,
                   "content_type": file.content_type, "sha256": file.sha256}
    assert file.sha256 == hashlib.sha256(FILE_BYTES).hexdigest()

    conv, msgs = core.conversations, core.messages
    a, b, c, d, e = (ids[n] for n in ("alice", "bob", "carol", "dave", "erin"))

    # A private conversation: plain, x, attachment, client id.
    dm, _, _ = await conv.create(a, "u", [b])
    m_plain, _ = await msgs.send(a, dm.id, body="hello bob")
    m_x, _ = await msgs.send(b, dm.id, body="here I am", x={"kind": "location", "lat": 52.5, "lon": 13.4})
    m_att, _ = await msgs.send(a, dm.id, body="a photo", attachments=(
        Attachment(file_id=str(file.id), file_name="photo.png", size=file.size, content_type="image/png"),))
    m_cid, _ = await msgs.send(b, dm.id, body="sent once", client_id="bob-client-1")
    await msgs.mark_read(b, dm.id)  # bob has read up to alice's photo: MessagesRead for alice
    m_unread, _ = await msgs.send(a, dm.id, body="did you see it?")  # unread for bob

    # A group made by alice: messages, then added / renamed / removed / left.
    g1, _, _ = await conv.create(a, "g", [b, c], name="Project", description="The project group",
                                 extra={"topic": "planning"})
    g1_m1, _ = await msgs.send(a, g1.id, body="welcome", x={"pinned": True})
    g1_m2, _ = await msgs.send(c, g1.id, body="thanks!")
    g1_edit, _ = await msgs.send(b, g1.id, body="typo hree")
    await msgs.edit(b, g1_edit.id, body="typo here")  # MessageEdited
    g1_gone, _ = await msgs.send(c, g1.id, body="oops, wrong group")
    await msgs.delete(c, g1.id, [g1_gone.id], for_all=True)  # MessagesDeleted
    await conv.update(b, g1.id, add=[d], name="Project X")  # a member adds dave and renames: added_participant
    await conv.update(a, g1.id, remove=[c])  # the owner removes carol: removed_participant, ConversationKicked
    await msgs.send(d, g1.id, body="hi all, bye all")
    await conv.leave(d, g1.id)  # left_participants
    await msgs.mark_read(b, g1.id)

    # A second group made by bob; bob hides one message for himself.
    g2, _, _ = await conv.create(b, "g", [a, c, e], name="Weekend", description="plans",
                                 extra={"emoji": "sun", "n": 2})
    g2_m1, _ = await msgs.send(e, g2.id, body="hike on saturday?", x={"poll": ["yes", "no"]})
    g2_hidden, _ = await msgs.send(c, g2.id, body="something bob hides")
    await msgs.send(a, g2.id, body="yes", client_id="alice-client-7")
    await msgs.delete(b, g2.id, [g2_hidden.id], for_all=False)  # useridmsgid_
    await msgs.mark_read(c, g2.id, [g2_m1.id])

    # Transient system messages (op log SystemMessage), to users and to a conversation.
    await msgs.system_message(a, client_id="sys-1", x={"call": "ring"}, uids=[b, c])
    await msgs.system_message(b, client_id="sys-2", x={"topic": "changed"}, cid=g2.id)

    # A push event (queued for bob's iPhone).
    event = await core.push.create_event(a, [b], {"title": "Ping", "body": "call me"})

    # Contacts.
    await core.contacts.add(a, [
        {"first_name": "Bobby", "last_name": "B", "company": "Acme",
         "email": [{"type": "work", "value": "bob@example.com"}], "phone": [{"type": "cell", "value": "+15550002"}]},
        {"first_name": "Nobody", "email": [{"type": "home", "value": "nobody@example.com"}]},
    ])
    await core.contacts.add(b, [{"last_name": "Archer", "phone": [{"type": "home", "value": "+1 555 0001"}]}])

    # Blocks, last: one one-way (dave blocks erin) and one mutual pair (carol and erin).
    await core.blocks.block(d, [e])
    await core.blocks.block(c, [e])
    await core.blocks.block(e, [c])

    # Two admin tokens; then a user whose login takes the first token's `admin-<id>` name
    # (case differs), so the migration must pick `admin-<id>-2` for that token's user.
    tokens = []
    for name in ("ops", "ci-bot"):
        token = await core.store.write(lambda txn, name=name: admin_tokens.create_txn(txn, core.ids, name))
        record = admin_tokens.authenticate(core.store, token)
        tokens.append({"token": token, "id": record.id, "name": name, "created_at": record.created_at})
    squatter = await core.accounts.create(f"ADMIN-{tokens[0]['id']}")
    out["users"]["squatter"] = {"id": squatter.id, "login": squatter.login}
    out["admin_tokens"] = tokens

    # Last activity: users come online and leave again (presence persists the time).
    async with trio.open_nursery() as nursery:
        await nursery.start(core.presence.run)
        for uid in (a, b, c):
            core.bus.subscribe(uid).close()
        with trio.fail_after(10):
            while True:
                with core.store.read() as txn:
                    if all(txn.exists("userid_lastactivity", keys.u64(uid)) for uid in (a, b, c)):
                        break
                await trio.sleep(0.01)
        core.presence.close()

    out["conversations"] = {"dm": dm.id, "g1": g1.id, "g2": g2.id}
    out["messages"] = {
        "dm_plain": m_plain.id, "dm_x": m_x.id, "dm_attachment": m_att.id, "dm_client_id": m_cid.id,
        "dm_unread": m_unread.id, "g1_x": g1_m1.id, "g1_plain": g1_m2.id, "g1_edited": g1_edit.id,
        "g1_deleted_for_all": g1_gone.id, "g2_x": g2_m1.id, "g2_hidden_by_bob": g2_hidden.id,
    }
    out["push_event"] = event.id
    out["blocks"] = [["dave", "erin"], ["carol", "erin"], ["erin", "carol"]]


def build(outdir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = make_config(tmp, auth={"argon2_cost": "min", "refresh_token_ttl": REFRESH_TTL_S},
                             storage={"map_size_mb": 64})
        manifest = {"format_version": 1, "made_by": "d1e0e6d", "users": {}, "sessions": []}
        trio.run(with_core, config, lambda core: make(core, manifest))

        pack = tmp / "pack"
        (pack / "db").mkdir(parents=True)
        env = lmdb.open(str(config.data_dir / "db"), max_dbs=64, readonly=True, lock=False)
        try:
            env.copy(str(pack / "db"), compact=True)
        finally:
            env.close()
        (pack / "db" / "lock.mdb").unlink(missing_ok=True)
        manifest["file"]["blob"] = f"files/{manifest['file']['sha256'][:2]}/{manifest['file']['sha256'][2:]}"
        outdir.mkdir(parents=True, exist_ok=True)
        target = outdir / "format1.tar.gz"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            def add(path: Path, name: str) -> None:
                info = tar.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(path, "rb") as f:
                    tar.addfile(info, f)

            add(pack / "db" / "data.mdb", "db/data.mdb")
            blob = config.data_dir / manifest["file"]["blob"]
            add(blob, manifest["file"]["blob"])
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        target.write_bytes(buf.getvalue())
        return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: PYTHONPATH=/tmp/wt-format1 {sys.argv[0]} OUTDIR")
    path = build(Path(sys.argv[1]))
    print(f"{path}: {path.stat().st_size} bytes")
