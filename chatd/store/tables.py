"""Every LMDB table, declared once with its key layout and value type (data format 2).

A table is named `<key>_<value>`. Keys are fixed-width big-endian ids (so byte
order is numeric order), case-folded text, or digests; `Table.key(...)` builds
one from its parts and is the only way callers make keys. Values are a record
type (cbor2-encoded), `ID` (8 raw bytes: another table's id), `EMPTY` (the key
alone is the fact) or `ANY` (cbor2 of plain data).
"""

import struct

from . import records as r

_U64 = struct.Struct(">Q")
_U64x2 = struct.Struct(">QQ")
MAX_U64 = (1 << 64) - 1


class Layout:
    """How a table's key is made from its parts, and read back."""

    __slots__ = ("name", "encode", "decode")

    def __init__(self, name: str, encode, decode):
        self.name = name
        self.encode = encode
        self.decode = decode

    def __repr__(self) -> str:
        return f"Layout({self.name})"


def _text(s: str) -> bytes:
    return s.casefold().encode("utf-8")


def _digest(d: bytes, size: int) -> bytes:
    if len(d) != size:
        raise ValueError(f"a {size}-byte digest is expected")
    return d


ID = Layout("id", _U64.pack, lambda b: _U64.unpack(b)[0])
ID_ID = Layout("id ‖ id", _U64x2.pack, _U64x2.unpack)
TEXT = Layout("casefolded text", _text, lambda b: b.decode("utf-8"))
ID_TEXT = Layout("id ‖ casefolded text", lambda i, s: _U64.pack(i) + _text(s),
                 lambda b: (_U64.unpack_from(b)[0], b[8:].decode("utf-8")))
ID_DIGEST16 = Layout("id ‖ 16-byte digest", lambda i, d: _U64.pack(i) + _digest(d, 16),
                     lambda b: (_U64.unpack_from(b)[0], b[8:]))
DIGEST32 = Layout("32-byte digest", lambda d: _digest(d, 32), lambda b: b)
NAME = Layout("ascii name", lambda s: s.encode("ascii"), lambda b: b.decode("ascii"))

ANY = object()  # cbor2 of plain data
EMPTY = object()  # no value: the key is the fact
# ID (the layout object) doubles as a value type: 8 raw bytes holding an id.


class Table:
    __slots__ = ("name", "layout", "value", "prefix_len")

    def __init__(self, name: str, layout: Layout, value):
        self.name = name
        self.layout = layout
        self.value = value
        self.prefix_len = 8 if layout.name.startswith("id") else 0

    def key(self, *parts) -> bytes:
        return self.layout.encode(*parts)

    def prefix(self, first: int) -> bytes:
        """The key prefix of every row whose first part is `first` (an id)."""
        return _U64.pack(first)

    def parts(self, key: bytes):
        return self.layout.decode(key)

    def __repr__(self) -> str:
        return f"Table({self.name})"


meta = Table("meta", NAME, ANY)                                       # format version, secrets
userid_user = Table("userid_user", ID, r.User)
username_userid = Table("username_userid", TEXT, ID)                  # casefolded login → user
email_userid = Table("email_userid", TEXT, ID)
phone_userid = Table("phone_userid", TEXT, ID)                        # normalised phone → user
sessionid_session = Table("sessionid_session", ID, r.Session)
tokenhash_sessionid = Table("tokenhash_sessionid", DIGEST32, ID)      # sha256(access token)
refreshhash_sessionid = Table("refreshhash_sessionid", DIGEST32, ID)  # sha256(refresh token)
useridsessionid_ = Table("useridsessionid_", ID_ID, EMPTY)            # a user's sessions
useriddevice_sessionid = Table("useriddevice_sessionid", ID_TEXT, ID)
adminhash_admintoken = Table("adminhash_admintoken", DIGEST32, r.AdminToken)
chanid_chan = Table("chanid_chan", ID, r.Channel)
chanuserid_member = Table("chanuserid_member", ID_ID, r.Member)
chanuserid_read = Table("chanuserid_read", ID_ID, ID)                 # the member's read mark: a message id
useridchanid_ = Table("useridchanid_", ID_ID, EMPTY)                  # a user's channels
userpair_chanid = Table("userpair_chanid", ID_ID, ID)                 # low ‖ high user id → their DM
chanidmsgid_msg = Table("chanidmsgid_msg", ID_ID, r.Message)          # history is a range scan
msgid_chanid = Table("msgid_chanid", ID, ID)
useridclientid_msgid = Table("useridclientid_msgid", ID_DIGEST16, ID)  # retry de-duplication
useridmsgid_ = Table("useridmsgid_", ID_ID, EMPTY)                    # messages hidden for the user
useridotherid_rel = Table("useridotherid_rel", ID_ID, r.Relationship)
useridcontactid_contact = Table("useridcontactid_contact", ID_ID, r.Contact)
useridopid_op = Table("useridopid_op", ID_ID, ANY)                    # events missed while offline
userid_lastactivity = Table("userid_lastactivity", ID, ANY)           # Unix ms
fileid_file = Table("fileid_file", ID, r.File)
fileidchanid_ = Table("fileidchanid_", ID_ID, EMPTY)                  # where a file was shared
useriddevice_pushsub = Table("useriddevice_pushsub", ID_TEXT, r.PushSubscription)
pusheventid_pushevent = Table("pusheventid_pushevent", ID, r.PushEvent)
pushid_push = Table("pushid_push", ID, r.QueuedPush)                  # durable queue for a push sender

TABLES: tuple[Table, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Table))
BY_NAME = {t.name: t for t in TABLES}

FORMAT_VERSION = 2

# Tables keyed by a bare snowflake: their highest key bounds every id issued so far.
ID_TABLES = (userid_user, sessionid_session, chanid_chan, msgid_chanid, fileid_file, pushid_push)
