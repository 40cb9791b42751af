"""Push subscriptions and a durable queue of notifications for users with no connected device.

Delivering the queue to real push services (Web Push, APNs, FCM) is a
separate sender; until one runs, notifications wait in `pushid_push`.
"""

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import validate
from .clock import now_ms
from .errors import Invalid, NotFound
from .ids import Snowflakes
from .models import Message, PushEvent, PushSubscription, QueuedPush
from .relationships import Relationships

PLATFORMS = ("web", "ios", "android")


class Push:
    def __init__(self, store: Store, ids: Snowflakes, file_url):
        self.store = store
        self.ids = ids
        # Renders a download URL for a stored File (the Files service signs it).
        self.file_url = file_url

    async def subscribe(self, user_id: int, *, platform, device_udid, web_endpoint=None, web_key_auth=None,
                        web_key_p256dh=None, device_token=None) -> PushSubscription:
        if platform not in PLATFORMS:
            raise Invalid(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
        device_udid = validate.text(device_udid, "device_udid", max_len=255, allow_newlines=False, key=True)
        web = [web_endpoint, web_key_auth, web_key_p256dh]
        if platform == "web":
            if not all(isinstance(v, str) and v for v in web):
                raise Invalid("web subscriptions need web_endpoint, web_key_auth and web_key_p256dh",
                              field="web_endpoint")
            for name, v in zip(("web_endpoint", "web_key_auth", "web_key_p256dh"), web, strict=True):
                validate.text(v, name, max_len=2048, allow_newlines=False)
        elif not isinstance(device_token, str) or not device_token:
            raise Invalid("ios and android subscriptions need device_token", field="device_token")
        else:
            validate.text(device_token, "device_token", max_len=4096, allow_newlines=False)
        new_id, now = self.ids.next(), now_ms()
        key = T.useriddevice_pushsub.key(user_id, device_udid)

        def subscribe_txn(txn: Txn) -> PushSubscription:
            old = txn.get(T.useriddevice_pushsub, key)
            sub = PushSubscription(
                id=old.id if old else new_id, user_id=user_id, platform=platform, device_udid=device_udid,
                created_at=old.created_at if old else now, updated_at=now, web_endpoint=web_endpoint,
                web_key_auth=web_key_auth, web_key_p256dh=web_key_p256dh, device_token=device_token,
            )
            txn.put(T.useriddevice_pushsub, key, sub)
            return sub

        return await self.store.write(subscribe_txn)

    def subscriptions(self, user_id: int) -> list[PushSubscription]:
        with self.store.read() as txn:
            return [s for _, s in txn.scan(T.useriddevice_pushsub, prefix=T.useriddevice_pushsub.prefix(user_id))]

    async def unsubscribe(self, user_id: int, device_udid) -> None:
        device_udid = validate.text(device_udid, "device_udid", max_len=255, allow_newlines=False, key=True)

        def delete_txn(txn: Txn) -> None:
            if not txn.delete(T.useriddevice_pushsub, T.useriddevice_pushsub.key(user_id, device_udid)):
                raise NotFound("no subscription for this device", kind="push_subscription")

        await self.store.write(delete_txn)

    def queued(self, user_id: int | None = None) -> list[QueuedPush]:
        with self.store.read() as txn:
            return [q for _, q in txn.scan(T.pushid_push) if user_id is None or q.user_id == user_id]

    def queue_txn(self, txn: Txn, user_ids, payload: dict) -> int:
        n = 0
        now = now_ms()
        for uid in user_ids:
            for _, sub in txn.scan(T.useriddevice_pushsub, prefix=T.useriddevice_pushsub.prefix(uid)):
                qid = self.ids.next()
                txn.put(T.pushid_push, T.pushid_push.key(qid),
                        QueuedPush(id=qid, user_id=uid, subscription_id=sub.id, payload=payload, created_at=now))
                n += 1
        return n

    def queue_message_txn(self, txn: Txn, msg: Message, user_ids) -> None:
        """The notification for a message, for each subscription of each offline recipient."""
        if not any(txn.scan_raw(T.useriddevice_pushsub, prefix=T.useriddevice_pushsub.prefix(uid), limit=1) for uid in user_ids):
            return
        author = txn.get(T.userid_user, T.userid_user.key(msg.author_id))
        payload = {"title": author.display_name if author else "", "body": msg.body, "cid": str(msg.cid)}
        if msg.attachments:
            file = txn.get(T.fileid_file, T.fileid_file.key(int(msg.attachments[0].file_id)))
            if file is not None:
                payload["firstAttachmentUrl"] = self.file_url(file)
        self.queue_txn(txn, user_ids, payload)

    async def create_event(self, user_id: int, recipients: list[int], message: dict) -> PushEvent:
        if not recipients or len(recipients) > 100:
            raise Invalid("recipients_ids must list 1 to 100 users", field="recipients_ids")
        if not isinstance(message, dict) or not isinstance(message.get("title", ""), str) \
                or not isinstance(message.get("body", ""), str):
            raise Invalid("message must be an object with title and body strings", field="message")
        text = msgspec.json.encode(message).decode()
        if len(text) > 4096:
            raise Invalid("message is too long", field="message")
        event = PushEvent(id=self.ids.next(), user_id=user_id, recipients_ids=tuple(dict.fromkeys(recipients)),
                          message=text, created_at=now_ms())

        def event_txn(txn: Txn) -> PushEvent:
            for uid in event.recipients_ids:
                if not txn.exists(T.userid_user, T.userid_user.key(uid)):
                    raise NotFound("user not found", kind="user", id=uid)
            txn.put(T.pusheventid_pushevent, T.pusheventid_pushevent.key(event.id), event)
            self.queue_txn(txn, [uid for uid in event.recipients_ids if self.may_notify_txn(txn, user_id, uid)],
                           dict(message))
            return event

        return await self.store.write(event_txn)

    @staticmethod
    def may_notify_txn(txn: Txn, sender: int, recipient: int) -> bool:
        """Whether `sender` may push a notification of their own text to `recipient`: only to
        themself or to someone they share a conversation with who has not blocked them. Others
        are skipped without an error, so the answer does not reveal who blocked the sender."""
        if sender == recipient:
            return True
        if Relationships.blocks_txn(txn, recipient, sender):
            return False
        return any(txn.exists(T.chanuserid_member, T.chanuserid_member.key(cid, recipient))
                   for _, cid in txn.keys(T.useridchanid_, prefix=T.useridchanid_.prefix(sender)))

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for k, _ in list(txn.scan_raw(T.useriddevice_pushsub, prefix=T.useriddevice_pushsub.prefix(user_id))):
            txn.delete(T.useriddevice_pushsub, k)
