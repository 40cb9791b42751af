"""A user's address book. Which user an email or phone belongs to is looked up when the
contact is read, so `matched_user_id` follows users who change their email or phone."""

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import validate
from .clock import now_ms
from .errors import Invalid, NotFound
from .ids import Snowflakes
from .models import Contact, ContactPoint

MAX_POINTS = 20
MAX_BATCH = 100


class ContactView(msgspec.Struct):
    contact: Contact
    email_matches: list[int | None]
    phone_matches: list[int | None]


def _points(value, field: str) -> tuple[ContactPoint, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_POINTS:
        raise Invalid(f"{field} must be a list of at most {MAX_POINTS} entries", field=field)
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise Invalid(f"each {field} entry needs a string value", field=field)
        kind = item.get("type", "other")
        validate.text(kind, f"{field}.type", max_len=32, allow_newlines=False)
        value = validate.text(item["value"], field, max_len=254, allow_newlines=False, key=True).strip()
        if not value:
            raise Invalid(f"each {field} entry needs a value that is not blank", field=field)
        out.append(ContactPoint(type=kind, value=value))
    return tuple(out)


class Contacts:
    def __init__(self, store: Store, ids: Snowflakes):
        self.store = store
        self.ids = ids

    def _parse(self, fields: dict) -> dict:
        out = {}
        for name in ("first_name", "last_name", "company"):
            value = fields.get(name)
            if value is not None:
                out[name] = validate.text(value, name, max_len=128, min_len=0, allow_newlines=False)
        out["email"] = _points(fields.get("email"), "email")
        out["phone"] = _points(fields.get("phone"), "phone")
        if not (out["email"] or out["phone"]):
            raise Invalid("email or phone is required", field="email")
        if not (out.get("first_name") or out.get("last_name")):
            raise Invalid("first_name or last_name is required", field="first_name")
        return out

    @staticmethod
    def _view_txn(txn: Txn, contact: Contact) -> ContactView:
        def match(table, value):
            return txn.get(table, table.key(value)) if value else None

        def phone(value):
            try:
                return validate.phone(value)
            except Invalid:
                return None

        return ContactView(
            contact,
            [match(T.email_userid, p.value.strip()) for p in contact.email],
            [match(T.phone_userid, phone(p.value)) for p in contact.phone],
        )

    async def add(self, owner: int, items: list[dict]) -> list[ContactView]:
        if not items or len(items) > MAX_BATCH:
            raise Invalid(f"give 1 to {MAX_BATCH} contacts", field="contacts")
        now = now_ms()
        contacts = [Contact(id=self.ids.next(), owner_id=owner, created_at=now, updated_at=now, **self._parse(i))
                    for i in items]

        def add_txn(txn: Txn):
            for c in contacts:
                txn.put(T.useridcontactid_contact, T.useridcontactid_contact.key(owner, c.id), c)
            return [self._view_txn(txn, c) for c in contacts]

        return await self.store.write(add_txn)

    async def update(self, owner: int, contact_id: int, fields: dict) -> ContactView:
        parsed = self._parse(fields)

        def update_txn(txn: Txn):
            key = T.useridcontactid_contact.key(owner, contact_id)
            old = txn.get(T.useridcontactid_contact, key)
            if old is None:
                raise NotFound("contact not found", kind="contact", id=contact_id)
            new = Contact(id=old.id, owner_id=owner, created_at=old.created_at,
                          updated_at=max(now_ms(), old.updated_at + 1), **parsed)
            txn.put(T.useridcontactid_contact, key, new)
            return self._view_txn(txn, new)

        return await self.store.write(update_txn)

    def list_for(self, owner: int, *, limit: int = 100, updated_after: int | None = None,
             ids: list[int] | None = None) -> list[ContactView]:
        with self.store.read() as txn:
            if ids is not None:
                found = [txn.get(T.useridcontactid_contact, T.useridcontactid_contact.key(owner, cid)) for cid in ids]
                contacts = [c for c in found if c is not None]
            else:
                contacts = [c for _, c in txn.scan(T.useridcontactid_contact, prefix=T.useridcontactid_contact.prefix(owner))]
            if updated_after is not None:
                contacts = [c for c in contacts if c.updated_at > updated_after]
            return [self._view_txn(txn, c) for c in contacts[:limit]]

    async def delete(self, owner: int, contact_id: int) -> None:
        def delete_txn(txn: Txn):
            if not txn.delete(T.useridcontactid_contact, T.useridcontactid_contact.key(owner, contact_id)):
                raise NotFound("contact not found", kind="contact", id=contact_id)

        await self.store.write(delete_txn)

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for k, _ in list(txn.scan_raw(T.useridcontactid_contact, prefix=T.useridcontactid_contact.prefix(user_id))):
            txn.delete(T.useridcontactid_contact, k)
