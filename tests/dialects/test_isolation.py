"""Isolation: a logged-in user who is not in a conversation can neither read it, write to it,
change it, mark it read, list its people, nor hear it — through every operation or route of
every dialect served today that takes a conversation, channel, message or attachment id.

Each row of SAMA_CASES and SOCKCHAT_CASES is one operation (and variant). For every row the
outsider's answer must
  * be the dialect's own answer for an id that does not exist (SAMA: `{error: {status: 404,
    message}}`; sockchat: 404 with a `null` body, or `{ok: false, status: 404, error}` as a
    Socket.IO ack), and equal, field for field, the answer for ids that never existed and for
    ids that existed and were deleted — so the outsider learns nothing;
  * leave everything unchanged: the members' histories (with read statuses), unread counts,
    conversation lists, participants and file access are compared with a snapshot;
  * cause no event: the members' live connections (and the outsider's) receive nothing before
    a marker sent after the answer (see tests/dialects/isolation_clients.py).
The outsiders: a STRANGER (never a member) in a SAMA group and in a SAMA private conversation,
a user who LEFT a SAMA group and one who was REMOVED from it, and a sockchat stranger in a DM.
Then the members act in every way that tells participants, and the outsider must hear none of
it, neither live nor in the operations log afterwards (SAMA), nor through the Socket.IO
`channels` list in any of its three forms (sockchat).

Neither dialect has reactions. The coverage tests fail when an operation or route appears that
the tables neither cover nor list as not taking a conversation: classify it there.

On d1e0e6d (before the one core model), message_edit of a message in a conversation the caller
was not in answered "conversation not found" where an unknown id got "message not found": the
outsider learned the message existed. The rows below now require the same answer.
"""

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
import trio

from tests.dialects import isolation_clients as iso
from tests.dialects.sama.client import device, now_ms
from tests.dialects.sockchat.client import sio_client
from tests.helpers import make_config


@pytest.fixture
def config(tmp_path):
    # Both dialects; the rate limit out of the way (a run sends a few hundred frames per connection).
    return make_config(tmp_path, dialects={"sama": {"enabled": True}, "sockchat": {"enabled": True}},
                       limits={"rate_per_second": 100000.0, "rate_burst": 1000000})


# -- what an answer must be -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    what: str
    check: Callable[[object, dict], bool]


def _sama_not_found(answer, ids) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    return (set(answer) == {"error"} and isinstance(error, dict) and set(error) == {"status", "message"}
            and error["status"] == 404 and isinstance(error["message"], str))


SAMA_404 = Expect("SAMA's not-found error {error: {status: 404, message}}", _sama_not_found)
SAMA_422_UNKNOWN_FILE = Expect(
    "SAMA's 422 for an attachment that is not a known file",
    lambda answer, ids: set(answer) == {"error"} and answer["error"].get("status") == 422
    and "not a known file" in str(answer["error"].get("message")))


def sama_empty(key: str) -> Expect:
    return Expect(f"{{{key}: []}}", lambda answer, ids: answer == {key: []})


SAMA_ONLY_OWN_CONVERSATION = Expect(
    "only the outsider's own conversation",
    lambda answer, ids: [c.get("_id") for c in answer.get("conversations", [None])] == [ids["own"]])
SAMA_ONLY_OWN_PARTICIPANTS = Expect(
    "only the participants of the outsider's own conversation",
    lambda answer, ids: sorted(u["_id"] for u in answer.get("users", [])) == sorted([ids["me"], ids["partner"]]))

SOCK_404 = Expect("404 with a null body", lambda answer, ids: answer == (404, None))
SOCK_NO_CHANNELS = Expect("404 {dmchannels: []}", lambda answer, ids: answer == (404, {"dmchannels": []}))
SOCK_ONLY_OWN_CHANNEL = Expect(
    "200 with only the outsider's own channel",
    lambda answer, ids: answer[0] == 200
    and [c["channel_id"] for c in answer[1]["dmchannels"]] == [ids["own"]])
SOCK_ACK_404 = Expect(
    "the ack {ok: false, status: 404, error}",
    lambda answer, ids: isinstance(answer, dict) and set(answer) == {"ok", "status", "error"}
    and answer["ok"] is False and answer["status"] == 404 and isinstance(answer["error"], str))


@dataclass(frozen=True)
class Case:
    op: str  # the operation, packet, route or event, as the dialect names it
    variant: str
    act: Callable  # async (outsider's client, ids) -> the normalised answer
    expect: Expect
    needs: str | None = None  # an id the outsider must have for the row to apply

    @property
    def id(self) -> str:
        return f"{self.op} [{self.variant}]"


# -- SAMA -----------------------------------------------------------------------------------------


def req(op: str, body: Callable[[dict], object]):
    async def act(c, ids):
        return await iso.sama_request(c, op, body(ids))
    return act


def message(body: Callable[[dict], dict]):
    async def act(c, ids):
        return await iso.sama_message(c, body(ids))
    return act


def packet(kind: str, body: Callable[[dict], dict]):
    async def act(c, ids):
        return await iso.sama_packet(c, kind, body(ids))
    return act


# Every SAMA operation and packet that takes a conversation, message or file id.
# ids: cid (the conversation), mid (a member's message in it), old_mid (the outsider's own message
# written while a member), file (attached in it), own / own_file / me / partner (the outsider's
# own private conversation, uploaded file, user id, and partner there), name (the group's name).
SAMA_CASES = [
    Case("conversation_update", "rename", req("conversation_update", lambda i: {"id": i["cid"], "name": "hijacked"}), SAMA_404),
    Case("conversation_update", "describe", req("conversation_update", lambda i: {"id": i["cid"], "description": "hijacked"}), SAMA_404),
    Case("conversation_update", "add oneself", req("conversation_update", lambda i: {"id": i["cid"], "participants": {"add": [i["me"]]}}), SAMA_404),
    Case("conversation_update", "remove a member", req("conversation_update", lambda i: {"id": i["cid"], "participants": {"remove": [i["member"]]}}), SAMA_404),
    Case("conversation_delete", "leave", req("conversation_delete", lambda i: {"id": i["cid"]}), SAMA_404),
    Case("conversation_list", "ids=[cid]", req("conversation_list", lambda i: {"ids": [i["cid"]]}), sama_empty("conversations")),
    Case("conversation_list", "ids=[cid, own]", req("conversation_list", lambda i: {"ids": [i["cid"], i["own"]]}), SAMA_ONLY_OWN_CONVERSATION),
    Case("conversation_search", "the group's name", req("conversation_search", lambda i: {"name": i["name"]}), sama_empty("conversations")),
    Case("get_participants_by_cids", "cids=[cid]", req("get_participants_by_cids", lambda i: {"cids": [i["cid"]]}), sama_empty("users")),
    Case("get_participants_by_cids", "cids=[cid, own]", req("get_participants_by_cids", lambda i: {"cids": [i["cid"], i["own"]]}), SAMA_ONLY_OWN_PARTICIPANTS),
    Case("message_list", "latest", req("message_list", lambda i: {"cid": i["cid"]}), SAMA_404),
    Case("message_list", "updated_at.gt", req("message_list", lambda i: {"cid": i["cid"], "updated_at": {"gt": 0}}), SAMA_404),
    Case("message_list", "updated_at.lt", req("message_list", lambda i: {"cid": i["cid"], "updated_at": {"lt": 2 ** 42}}), SAMA_404),
    Case("message_read", "all unread", req("message_read", lambda i: {"cid": i["cid"]}), SAMA_404),
    Case("message_read", "ids=[mid]", req("message_read", lambda i: {"cid": i["cid"], "ids": [i["mid"]]}), SAMA_404),
    Case("message_read", "own cid, ids=[mid]", req("message_read", lambda i: {"cid": i["own"], "ids": [i["mid"]]}), SAMA_404),
    Case("message_delete", "type=all", req("message_delete", lambda i: {"cid": i["cid"], "ids": [i["mid"]], "type": "all"}), SAMA_404),
    Case("message_delete", "type=myself", req("message_delete", lambda i: {"cid": i["cid"], "ids": [i["mid"]], "type": "myself"}), SAMA_404),
    Case("message_delete", "own cid, type=all", req("message_delete", lambda i: {"cid": i["own"], "ids": [i["mid"]], "type": "all"}), SAMA_404),
    Case("message_delete", "own cid, type=myself", req("message_delete", lambda i: {"cid": i["own"], "ids": [i["mid"]], "type": "myself"}), SAMA_404),
    Case("message_delete", "own old message, type=all", req("message_delete", lambda i: {"cid": i["cid"], "ids": [i["old_mid"]], "type": "all"}), SAMA_404, needs="old_mid"),
    Case("message_delete", "own old message, type=myself", req("message_delete", lambda i: {"cid": i["cid"], "ids": [i["old_mid"]], "type": "myself"}), SAMA_404, needs="old_mid"),
    Case("message_edit", "a member's message", req("message_edit", lambda i: {"id": i["mid"], "body": "hijacked"}), SAMA_404),
    Case("message_edit", "own old message", req("message_edit", lambda i: {"id": i["old_mid"], "body": "hijacked"}), SAMA_404, needs="old_mid"),
    Case("get_file_urls", "a file attached there", req("get_file_urls", lambda i: {"file_ids": [i["file"]]}), SAMA_404),
    Case("message", "text", message(lambda i: {"cid": i["cid"], "body": "intrusion"}), SAMA_404),
    Case("message", "with x", message(lambda i: {"cid": i["cid"], "body": "intrusion", "x": {"k": "v"}}), SAMA_404),
    Case("message", "with the outsider's own attachment", message(lambda i: {"cid": i["cid"], "body": "", "attachments": [{"file_id": i["own_file"], "file_name": "mine.png"}]}), SAMA_404),
    Case("message", "own cid, a file attached there", message(lambda i: {"cid": i["own"], "body": "", "attachments": [{"file_id": i["file"]}]}), SAMA_422_UNKNOWN_FILE),
    Case("typing", "status=start", packet("typing", lambda i: {"cid": i["cid"], "status": "start"}), SAMA_404),
    Case("typing", "no status", packet("typing", lambda i: {"cid": i["cid"]}), SAMA_404),
    Case("system_message", "cid", packet("system_message", lambda i: {"cid": i["cid"], "x": {"k": "v"}}), SAMA_404),
]

SAMA_PACKETS = {"message", "typing", "system_message"}
# SAMA request operations that take no conversation, message or conversation-bound file id.
SAMA_NOT_CONVERSATION_SCOPED = {
    "user_create": "creates an account", "user_login": "logs in", "connect": "links a token",
    "user_logout": "ends the caller's session", "user_edit": "the caller's profile",
    "user_delete": "the caller's account", "user_search": "users", "get_users_by_ids": "users",
    "ping": "nothing",
    "conversation_create": "takes user ids; makes (or returns) a conversation the caller is in",
    "contact_add": "the caller's contacts", "contacts": "the caller's contacts",
    "contact_batch_add": "the caller's contacts", "contact_update": "the caller's contacts",
    "contact_list": "the caller's contacts", "contact_delete": "the caller's contacts",
    "create_files": "declares the caller's own files",
    "push_subscription_create": "the caller's push", "push_subscription_list": "the caller's push",
    "push_subscription_delete": "the caller's push", "push_event_create": "takes user ids",
    "block_user": "users", "unblock_user": "users", "list_blocked_users": "the caller's list",
    "user_last_activity": "users", "user_last_activity_subscribe": "a user, not a conversation",
    "user_last_activity_unsubscribe": "nothing",
    "op_log_list": "the caller's own log (checked for leaks by the hearing part below)",
}
# SAMA's HTTP routes take no conversation id: POST /login and POST /logout. Attachment bytes are
# served at /files/<id> only with a signed URL, which only get_file_urls hands out (a row above).

OUTSIDERS = [("stranger", "group"), ("stranger", "private"), ("left", "group"), ("removed", "group")]


def _without_ids(answer, ids: dict):
    """The answer with the ids it was asked about replaced by their names (a refusal may quote them)."""
    text = json.dumps(answer)
    for key in ("cid", "mid", "old_mid", "file"):
        if ids.get(key):
            text = text.replace(ids[key], f"<{key}>")
    return json.loads(text)


async def run_sama_case(w: iso.SamaWorld, case: Case) -> list[str]:
    real = await case.act(w.x, w.real)
    ghosts = [await case.act(w.x, g) for g in w.ghosts]
    problems = []
    if not case.expect.check(real, w.real):
        problems.append(f"answered {real!r}, expected {case.expect.what}")
    for g, ghost_ids in zip(ghosts, w.ghosts, strict=True):
        if not case.expect.check(g, ghost_ids):
            problems.append(f"for {ghost_ids['cid']}/{ghost_ids['mid']}, which do not exist, answered {g!r}, "
                            f"expected {case.expect.what}")
        same = _without_ids(real, w.real) == _without_ids(g, ghost_ids)
        if not same:
            problems.append(f"answered {real!r} but {g!r} for ids that do not exist "
                            f"(cid {ghost_ids['cid']}, mid {ghost_ids['mid']})")
    problems += await iso.sama_barrier(w)
    changed = iso.diff(w.baseline, await iso.sama_snapshot(w))
    if changed:
        problems += ["changed: " + c for c in changed]
    if problems:
        # Start the next row from a clean state, so one failure does not cascade.
        await iso.sama_settle(w)
        w.baseline = await iso.sama_snapshot(w)
    return problems


def _mentions(packet, cid: str) -> bool:
    return cid in json.dumps(packet)


async def sama_hearing(w: iso.SamaWorld) -> list[str]:
    """The members do everything that tells participants; the outsider hears none of it, live
    (its connection) nor offline (its operations log), while its own conversation still reaches it."""
    problems = []
    cid = w.real["cid"]
    await iso.sama_members_act(w, cid, "live")
    for sender, receiver in ((w.a, w.b), (w.b, w.a)):
        await sender.send({"typing": {"cid": w.group, "status": "stop"}})
        await iso.until_typing(receiver, w.group, sender.user_id)
    await w.x.ok("ping")
    if w.x.events:
        problems.append(f"live: the outsider received {w.x.events}")
    await iso.sama_settle(w)

    # Offline: the outsider's devices are gone; what it missed is in its operations log.
    me = w.x.user_id
    await w.x.close()
    with trio.fail_after(iso.STEP):
        while (await w.a.ok("user_last_activity", {"ids": [me]}))["last_activity"].get(me) == "online":
            await trio.sleep(0.01)
    mark = now_ms() - 1
    await iso.sama_members_act(w, cid, "offline")
    await w.hal.send_message(w.own, "while you were away")
    x2 = await device(w.server, w.nursery, w.x_login, "d2")
    logs = (await x2.ok("op_log_list", {"created_at": {"gt": mark}}))["logs"]
    leaked = [entry["packet"] for entry in logs if _mentions(entry["packet"], cid)]
    if leaked:
        problems.append(f"offline: the outsider's operations log has {leaked}")
    bodies = [entry["packet"].get("message", {}).get("body") for entry in logs]
    if bodies != ["while you were away"]:
        problems.append(f"offline: the outsider's operations log should hold only hal's message, has {logs}")
    return problems


def test_sama_table_names_every_operation():
    """Every SAMA request operation is in SAMA_CASES or SAMA_NOT_CONVERSATION_SCOPED; the packets
    are the ones the session takes."""
    from chatd.dialects.sama import wire
    from chatd.dialects.sama.session import OPERATIONS

    covered = {c.op for c in SAMA_CASES} - SAMA_PACKETS
    assert not covered & set(SAMA_NOT_CONVERSATION_SCOPED)
    assert sorted(set(OPERATIONS) - covered - set(SAMA_NOT_CONVERSATION_SCOPED)) == [], \
        "operations neither in SAMA_CASES nor in SAMA_NOT_CONVERSATION_SCOPED"
    assert sorted(covered - set(OPERATIONS)) == [], "rows for operations the server does not have"
    assert set(wire.Frame.__struct_fields__) - {"request"} == SAMA_PACKETS
    assert len({c.id for c in SAMA_CASES}) == len(SAMA_CASES)


@pytest.mark.deadline(30)
@pytest.mark.parametrize(("actor", "target"), OUTSIDERS, ids=[f"{a}-{t}" for a, t in OUTSIDERS])
async def test_sama_outsider_is_refused_and_hears_nothing(server, nursery, actor, target):
    w = await iso.sama_world(server, nursery, actor, target)
    failures = {}
    ran = 0
    for case in SAMA_CASES:
        if case.needs and w.real.get(case.needs) is None:
            continue
        ran += 1
        problems = await run_sama_case(w, case)
        if problems:
            failures[case.id] = problems
    assert ran == len(SAMA_CASES) - (3 if actor == "stranger" else 0)  # a stranger has no old messages
    hearing = await sama_hearing(w)
    if hearing:
        failures["hearing"] = hearing
    assert not failures, f"{actor} / {target}:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    - {p}" for p in problems) for name, problems in failures.items())


# -- sockchat -------------------------------------------------------------------------------------


def get(path: str, params: Callable[[dict], object]):
    async def act(o: iso.Outsider, ids):
        return await iso.sock_http(o.http, path, params(ids), o.account)
    return act


def emit(event: str, data: Callable[[dict], dict]):
    async def act(o: iso.Outsider, ids):
        return await o.socket.call(event, data(ids))
    return act


# Every sockchat route and Socket.IO event that takes a channel or message id.
# ids: cid (alice and bob's DM), mid (alice's message there), own (the stranger's DM with hal).
SOCKCHAT_CASES = [
    Case("GET /messages", "channel_id", get("/messages", lambda i: {"channel_id": i["cid"]}), SOCK_404),
    Case("GET /messages", "channelID", get("/messages", lambda i: {"channelID": i["cid"]}), SOCK_404),
    Case("GET /dmchannels", "channels=cid", get("/dmchannels", lambda i: {"channels": i["cid"]}), SOCK_NO_CHANNELS),
    Case("GET /dmchannels", "channels[]=cid&channels[]=own", get("/dmchannels", lambda i: [("channels[]", i["cid"]), ("channels[]", i["own"])]), SOCK_ONLY_OWN_CHANNEL),
    Case("GET /dmchannels", "channels=cid,own", get("/dmchannels", lambda i: {"channels": f"{i['cid']},{i['own']}"}), SOCK_ONLY_OWN_CHANNEL),
    Case("socket message", "channel as a string", emit("message", lambda i: {"content": "intrusion", "channel": i["cid"]}), SOCK_ACK_404),
    Case("socket message", "channel as a number", emit("message", lambda i: {"content": "intrusion", "channel": int(i["cid"])}), SOCK_ACK_404),
    Case("socket messageDeleted", "channel=cid", emit("messageDeleted", lambda i: {"channel": i["cid"], "id": i["mid"]}), SOCK_ACK_404),
    Case("socket messageDeleted", "own channel, foreign id", emit("messageDeleted", lambda i: {"channel": i["own"], "id": i["mid"]}), SOCK_ACK_404),
]
SOCKCHAT_COVERED_ROUTES = {("GET", "/messages"), ("GET", "/dmchannels")}
# sockchat routes that take no channel or message id.
SOCKCHAT_NOT_CHANNEL_SCOPED = {
    ("POST", "/new"): "logs in or signs up",
    ("POST", "/update-account"): "the caller's account",
    ("POST", "/create-channel"): "takes a user id; makes the caller's own DM",
    ("GET", "/users"): "takes user ids",
}
# Hearing a channel: the `channels` list of the Socket.IO handshake, in each form it may take.
SOCKCHAT_SUBSCRIPTION_FORMS = ("headers", "auth", "query")


def test_sockchat_table_names_every_route():
    """Every sockchat REST route is covered by SOCKCHAT_CASES or listed as taking no channel id."""
    from quart import Quart

    from chatd.dialects.sockchat.http import blueprint
    from chatd.dialects.sockchat.wire import Options

    app = Quart("isolation")
    app.register_blueprint(blueprint(None, Options(), ()))
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("sockchat.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == SOCKCHAT_COVERED_ROUTES | set(SOCKCHAT_NOT_CHANNEL_SCOPED)
    assert {tuple(c.op.split(" ", 1)) for c in SOCKCHAT_CASES if not c.op.startswith("socket ")} == SOCKCHAT_COVERED_ROUTES
    assert {c.op for c in SOCKCHAT_CASES if c.op.startswith("socket ")} == {"socket message", "socket messageDeleted"}


async def run_sock_case(w: iso.SockWorld, case: Case) -> list[str]:
    real = await case.act(w.outsider, w.real)
    problems = []
    if not case.expect.check(real, w.real):
        problems.append(f"answered {real!r}, expected {case.expect.what}")
    for ghost_ids in w.ghosts:
        g = await case.act(w.outsider, ghost_ids)
        if not case.expect.check(g, ghost_ids):
            problems.append(f"for {ghost_ids['cid']}/{ghost_ids['mid']}, which do not exist, answered {g!r}, "
                            f"expected {case.expect.what}")
        if g != real:
            problems.append(f"answered {real!r} but {g!r} for ids that do not exist "
                            f"(channel {ghost_ids['cid']}, message {ghost_ids['mid']})")
    problems += await iso.sock_barrier(w)
    changed = iso.diff(w.baseline, await iso.sock_snapshot(w))
    if changed:
        problems += ["changed: " + c for c in changed]
        w.baseline = await iso.sock_snapshot(w)
    return problems


async def sock_hearing(w: iso.SockWorld, stack) -> list[str]:
    """Sockets of the stranger that list alice and bob's channel (and its own) in each form hear
    nothing of alice and bob, written from sockchat or SAMA, while its own channel reaches them."""
    problems = []
    sockets = {"already open": w.s}
    for form in SOCKCHAT_SUBSCRIPTION_FORMS:
        sockets[form] = await stack.enter_async_context(
            sio_client(w.server, w.sam, [w.ab, w.sh], via=form, transports=["websocket"]))
    first = await iso.sock_send(w.a, w.ab, "secret-1")
    await iso.sock_send(w.b, w.ab, "secret-2")
    deleted = await w.a.call("messageDeleted", {"channel": w.ab, "id": first})
    assert deleted.get("ok") is True, deleted
    await w.a_sama.send_message(w.ab, "secret-3")
    await w.a_sama.ok("message_read", {"cid": w.ab})
    await w.b_sama.ok("message_read", {"cid": w.ab})
    await iso.sock_send(w.h, w.sh, "control")
    for form, socket in sockets.items():
        before = await iso.sock_until(socket, w.sh, "control")
        if before:
            problems.append(f"the stranger's socket ({form}) received {before}")
    before = await iso.sama_until_message(w.s_sama, w.sh, "control")
    if before:
        problems.append(f"the stranger's SAMA connection received {before}")
    return problems


@pytest.mark.deadline(30)
async def test_sockchat_stranger_is_refused_and_hears_nothing(server, nursery, http):
    async with AsyncExitStack() as stack:
        w = await iso.sock_world(server, nursery, http, stack)
        failures = {}
        for case in SOCKCHAT_CASES:
            problems = await run_sock_case(w, case)
            if problems:
                failures[case.id] = problems
        hearing = await sock_hearing(w, stack)
        if hearing:
            failures["hearing"] = hearing
    assert not failures, "sockchat stranger:\n" + "\n".join(
        f"  {name}:\n" + "\n".join(f"    - {p}" for p in problems) for name, problems in failures.items())
