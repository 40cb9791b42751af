"""Address book: contact_add, contacts / contact_batch_add, contact_update, contact_list, contact_delete;
matched_user_id follows the users who own an email or phone."""

import trio

from .client import create_user, device, now_ms


async def test_contact_add_matches_real_users(server, nursery):
    zed = await create_user(server, nursery, "zed", email="zed@example.com", phone="+15550001")
    await create_user(server, nursery, "owner")
    c = await device(server, nursery, "owner", "d1")
    contact = (await c.ok("contact_add", {
        "first_name": "Zed", "last_name": "Z", "company": "Acme",
        "email": [{"type": "work", "value": "zed@example.com"}, {"type": "home", "value": "nobody@example.com"}],
        "phone": [{"type": "home", "value": "+1 555 0001"}],
    }))["contact"]
    assert contact["_id"] and contact["first_name"] == "Zed" and contact["company"] == "Acme"
    assert contact["email"][0] == {"type": "work", "value": "zed@example.com", "matched_user_id": zed["_id"]}
    assert "matched_user_id" not in contact["email"][1]
    assert contact["phone"][0]["matched_user_id"] == zed["_id"]
    assert contact["created_at"] and contact["updated_at"]


async def test_contact_add_validation(server, nursery):
    await create_user(server, nursery, "owner")
    c = await device(server, nursery, "owner", "d1")
    assert await c.error("contact_add", {"first_name": "No points"}) == 422  # email or phone required
    assert await c.error("contact_add", {"email": [{"type": "w", "value": "a@b.c"}]}) == 422  # a name required
    assert await c.error("contact_add", {"first_name": "X", "email": "a@b.c"}) == 422
    assert await c.error("contact_add", ["not", "an", "object"]) == 400


async def test_contacts_batch_add_both_names(server, nursery):
    u = await create_user(server, nursery, "matched", phone="+15550002")
    await create_user(server, nursery, "owner")
    c = await device(server, nursery, "owner", "d1")
    added = (await c.ok("contacts", [
        {"first_name": "A", "email": [{"type": "work", "value": "a@example.com"}]},
        {"first_name": "B", "phone": [{"type": "home", "value": "+15550002"}]},
    ]))["contacts"]
    assert [x["first_name"] for x in added] == ["A", "B"]
    assert added[1]["phone"][0]["matched_user_id"] == u["_id"]
    more = (await c.ok("contact_batch_add", {"contacts": [
        {"last_name": "C", "email": [{"type": "work", "value": "c@example.com"}]}]}))["contacts"]
    assert more[0]["last_name"] == "C"
    assert len((await c.ok("contact_list", {}))["contacts"]) == 3
    assert await c.error("contacts", {"first_name": "x"}) == 400
    assert await c.error("contacts", []) == 422


async def test_contact_update_list_delete(server, nursery):
    await create_user(server, nursery, "owner")
    c = await device(server, nursery, "owner", "d1")
    ids = []
    for i in range(4):
        ids.append((await c.ok("contact_add", {"first_name": f"N{i}",
                                               "email": [{"type": "w", "value": f"n{i}@example.com"}]}))["contact"]["_id"])
    mark = now_ms()
    await trio.sleep(0.01)
    updated = (await c.ok("contact_update", {"id": ids[2], "first_name": "Renamed", "company": "NewCo",
                                             "email": [{"type": "w", "value": "n2@example.com"}]}))["contact"]
    assert updated["_id"] == ids[2] and updated["first_name"] == "Renamed" and updated["company"] == "NewCo"
    listed = (await c.ok("contact_list", {"updated_at": {"gt": mark}}))["contacts"]
    assert [x["_id"] for x in listed] == [ids[2]]
    assert len((await c.ok("contact_list", {"limit": 2}))["contacts"]) == 2
    by_ids = (await c.ok("contact_list", {"ids": [ids[0], ids[3]]}))["contacts"]
    assert {x["_id"] for x in by_ids} == {ids[0], ids[3]}
    assert await c.error("contact_list", {"ids": ids * 3}) == 400  # at most 10 ids
    assert await c.error("contact_list", {"limit": "2"}) == 400
    assert await c.error("contact_update", {"id": "12345", "first_name": "x",
                                            "email": [{"type": "w", "value": "x@example.com"}]}) == 404
    assert (await c.ok("contact_delete", {"id": ids[1]}))["success"] is True
    assert await c.error("contact_delete", {"id": ids[1]}) == 404
    assert await c.error("contact_delete", {}) == 400
    assert ids[1] not in {x["_id"] for x in (await c.ok("contact_list", {}))["contacts"]}


async def test_contacts_are_private(server, nursery):
    await create_user(server, nursery, "owner")
    await create_user(server, nursery, "snoop")
    c = await device(server, nursery, "owner", "d1")
    s = await device(server, nursery, "snoop", "d1")
    cid = (await c.ok("contact_add", {"first_name": "X", "email": [{"type": "w", "value": "x@example.com"}]}))
    cid = cid["contact"]["_id"]
    assert (await s.ok("contact_list", {}))["contacts"] == []
    assert await s.error("contact_delete", {"id": cid}) == 404
    assert await s.error("contact_update", {"id": cid, "first_name": "Y",
                                            "email": [{"type": "w", "value": "x@example.com"}]}) == 404


async def test_matched_user_id_follows_user_edit(server, nursery):
    await create_user(server, nursery, "owner")
    mover = await create_user(server, nursery, "mover", email="old@example.com", phone="+15550003")
    c = await device(server, nursery, "owner", "d1")
    m = await device(server, nursery, "mover", "d1")
    contact = (await c.ok("contact_add", {
        "first_name": "Mover",
        "email": [{"type": "w", "value": "old@example.com"}, {"type": "h", "value": "new@example.com"}],
        "phone": [{"type": "h", "value": "+15550003"}, {"type": "w", "value": "+15550004"}],
    }))["contact"]
    assert contact["email"][0].get("matched_user_id") == mover["_id"]
    assert "matched_user_id" not in contact["email"][1]
    await m.ok("user_edit", {"email": "new@example.com", "phone": "+15550004"})
    contact = (await c.ok("contact_list", {"ids": [contact["_id"]]}))["contacts"][0]
    assert "matched_user_id" not in contact["email"][0]
    assert contact["email"][1].get("matched_user_id") == mover["_id"]
    assert "matched_user_id" not in contact["phone"][0]
    assert contact["phone"][1].get("matched_user_id") == mover["_id"]
