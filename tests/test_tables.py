"""The table declarations: every key layout byte for byte, and the list of tables of data format 2.

A change here is a change of the data format: it needs a new FORMAT_VERSION and a migration.
"""

import hashlib
import struct

import pytest

from chatd.store import records as r
from chatd.store import tables as T

ONE, BIG = 1, 0x0102030405060708


def test_id_layout():
    assert T.ID.encode(0) == b"\x00" * 8
    assert T.ID.encode(ONE) == b"\x00" * 7 + b"\x01"
    assert T.ID.encode(BIG) == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert T.ID.encode(T.MAX_U64) == b"\xff" * 8
    assert T.ID.decode(bytes([1, 2, 3, 4, 5, 6, 7, 8])) == BIG
    for bad in (-1, 1 << 64):
        with pytest.raises(struct.error):
            T.ID.encode(bad)
    nums = [0, 1, 255, 256, 65535, 1 << 32, 1 << 56, T.MAX_U64]
    assert [T.ID.encode(n) for n in nums] == sorted(T.ID.encode(n) for n in nums)


def test_id_id_layout():
    assert T.ID_ID.encode(1, 2) == b"\x00" * 7 + b"\x01" + b"\x00" * 7 + b"\x02"
    assert T.ID_ID.decode(T.ID_ID.encode(5, 1 << 63)) == (5, 1 << 63)
    pairs = [(a, b) for a in (0, 1, 255, 256, 1 << 40, T.MAX_U64) for b in (0, 1, 256, 1 << 63)]
    assert sorted(pairs) == sorted(pairs, key=lambda p: T.ID_ID.encode(*p))
    assert T.ID_ID.encode(1, T.MAX_U64) < T.ID_ID.encode(2, 0)


def test_text_layout():
    assert T.TEXT.encode("Alice") == b"alice"
    assert T.TEXT.encode("Straße") == T.TEXT.encode("STRASSE") == b"strasse"
    assert T.TEXT.encode("Ñandú") == "ñandú".encode()
    assert T.TEXT.decode(b"alice") == "alice"


def test_id_text_layout():
    assert T.ID_TEXT.encode(BIG, "Phone-1") == bytes([1, 2, 3, 4, 5, 6, 7, 8]) + b"phone-1"
    assert T.ID_TEXT.decode(bytes([1, 2, 3, 4, 5, 6, 7, 8]) + b"phone-1") == (BIG, "phone-1")


def test_id_digest16_layout():
    digest = hashlib.sha256(b"client-1").digest()[:16]
    assert T.ID_DIGEST16.encode(ONE, digest) == b"\x00" * 7 + b"\x01" + digest
    assert T.ID_DIGEST16.decode(b"\x00" * 7 + b"\x01" + digest) == (ONE, digest)
    with pytest.raises(ValueError):
        T.ID_DIGEST16.encode(ONE, digest + b"x")


def test_digest32_layout():
    digest = hashlib.sha256(b"token").digest()
    assert T.DIGEST32.encode(digest) == digest
    with pytest.raises(ValueError):
        T.DIGEST32.encode(digest[:31])


def test_name_layout():
    assert T.NAME.encode("format_version") == b"format_version"
    with pytest.raises(UnicodeEncodeError):
        T.NAME.encode("é")


def test_table_keys_and_prefixes():
    assert T.chanidmsgid_msg.key(7, 9) == T.ID_ID.encode(7, 9)
    assert T.chanidmsgid_msg.prefix(7) == T.ID.encode(7)
    assert T.chanidmsgid_msg.key(7, 9).startswith(T.chanidmsgid_msg.prefix(7))
    assert T.chanidmsgid_msg.parts(T.chanidmsgid_msg.key(7, 9)) == (7, 9)
    assert T.useriddevice_pushsub.key(3, "iPhone") == T.ID.encode(3) + b"iphone"


# name → (key layout, value type) of data format 2
FORMAT_2 = {
    "meta": (T.NAME, T.ANY),
    "userid_user": (T.ID, r.User),
    "username_userid": (T.TEXT, T.ID),
    "email_userid": (T.TEXT, T.ID),
    "phone_userid": (T.TEXT, T.ID),
    "sessionid_session": (T.ID, r.Session),
    "tokenhash_sessionid": (T.DIGEST32, T.ID),
    "refreshhash_sessionid": (T.DIGEST32, T.ID),
    "useridsessionid_": (T.ID_ID, T.EMPTY),
    "useriddevice_sessionid": (T.ID_TEXT, T.ID),
    "adminhash_admintoken": (T.DIGEST32, r.AdminToken),
    "chanid_chan": (T.ID, r.Channel),
    "chanuserid_member": (T.ID_ID, r.Member),
    "chanuserid_read": (T.ID_ID, T.ID),
    "useridchanid_": (T.ID_ID, T.EMPTY),
    "userpair_chanid": (T.ID_ID, T.ID),
    "chanidmsgid_msg": (T.ID_ID, r.Message),
    "msgid_chanid": (T.ID, T.ID),
    "useridclientid_msgid": (T.ID_DIGEST16, T.ID),
    "useridmsgid_": (T.ID_ID, T.EMPTY),
    "useridotherid_rel": (T.ID_ID, r.Relationship),
    "useridcontactid_contact": (T.ID_ID, r.Contact),
    "useridopid_op": (T.ID_ID, T.ANY),
    "userid_lastactivity": (T.ID, T.ANY),
    "fileid_file": (T.ID, r.File),
    "fileidchanid_": (T.ID_ID, T.EMPTY),
    "useriddevice_pushsub": (T.ID_TEXT, r.PushSubscription),
    "pusheventid_pushevent": (T.ID, r.PushEvent),
    "pushid_push": (T.ID, r.QueuedPush),
}


def test_the_tables_of_format_2():
    assert T.FORMAT_VERSION == 2
    assert {t.name: (t.layout, t.value) for t in T.TABLES} == FORMAT_2
    assert T.BY_NAME["chanid_chan"] is T.chanid_chan
    for table in T.TABLES:
        assert getattr(T, table.name) is table  # declared under its own name
