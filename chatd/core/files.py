"""Attachments: declared first (name, size, type), uploaded to a signed URL, downloaded by
signed, expiring URLs. The bytes are content-addressed on disk; metadata lives in LMDB.

Who may fetch a file: its owner, and members of a conversation where it was shared.
"""

import hashlib
import hmac
import secrets
import time

import msgspec
import trio

from ..store import tables as T
from ..store.blobs import Blobs, BlobTooLarge
from ..store.lmdb import Store, Txn
from . import access, validate
from .clock import now_ms
from .errors import Invalid, NotFound, TooLarge, Unauthorized
from .ids import Snowflakes
from .models import File

MAX_FILES_PER_REQUEST = 10


class Files:
    def __init__(self, store: Store, ids: Snowflakes, blobs: Blobs, *, public_url: str, url_ttl: int,
                 max_size: int):
        self.store = store
        self.ids = ids
        self.blobs = blobs
        self.public_url = public_url.rstrip("/")
        self.url_ttl = url_ttl
        self.max_size = max_size
        self._secret = self._load_secret()

    def _load_secret(self) -> bytes:
        def secret_txn(txn: Txn) -> bytes:
            secret = txn.get(T.meta, T.meta.key("file_url_secret"))
            if secret is None:
                secret = secrets.token_bytes(32)
                txn.put(T.meta, T.meta.key("file_url_secret"), secret)
            return secret

        return self.store.write_now(secret_txn)

    async def create(self, owner: int, specs: list[dict]) -> list[File]:
        if not isinstance(specs, list) or not (1 <= len(specs) <= MAX_FILES_PER_REQUEST):
            raise Invalid(f"give 1 to {MAX_FILES_PER_REQUEST} files", field="files")
        now = now_ms()
        files = []
        for spec in specs:
            if not isinstance(spec, dict):
                raise Invalid("each file must be an object", field="files")
            size = spec.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise Invalid("size must be a non-negative integer", field="size")
            if size > self.max_size:
                raise TooLarge(f"files may be at most {self.max_size} bytes")
            files.append(File(
                id=self.ids.next(), owner_id=owner, created_at=now, size=size,
                name=validate.text(spec.get("name"), "name", max_len=255, allow_newlines=False),
                content_type=validate.text(spec.get("content_type"), "content_type", max_len=255,
                                           allow_newlines=False),
            ))
        await self.store.write(lambda txn: [txn.put(T.fileid_file, T.fileid_file.key(f.id), f) for f in files])
        return files

    def get(self, file_id: int) -> File:
        with self.store.read() as txn:
            file = txn.get(T.fileid_file, T.fileid_file.key(file_id)) if 0 < file_id < T.MAX_U64 else None
        if file is None:
            raise NotFound("file not found", kind="file", id=file_id)
        return file

    def get_for(self, viewer: int, file_ids: list[int]) -> list[File]:
        out = []
        with self.store.read() as txn:
            for fid in file_ids:
                file = txn.get(T.fileid_file, T.fileid_file.key(fid)) if 0 < fid < T.MAX_U64 else None
                # A file the viewer may not read is answered as one that does not exist.
                if file is None or (file.owner_id != viewer and not any(
                    access.may_txn(txn, viewer, cid, access.READ)
                    for _, cid in txn.keys(T.fileidchanid_, prefix=T.fileidchanid_.prefix(fid))
                )):
                    raise NotFound("file not found", kind="file", id=fid)
                out.append(file)
        return out

    # -- signed URLs ---------------------------------------------------------------------------

    def _sign(self, action: str, file_id: int, expires: int) -> str:
        msg = f"{action}:{file_id}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def url(self, file: File, action: str) -> str:
        expires = int(time.time()) + self.url_ttl
        return f"{self.public_url}/files/{file.id}?action={action}&expires={expires}&sig={self._sign(action, file.id, expires)}"

    def verify(self, file_id: int, action: str, expires, sig) -> File:
        try:
            expires = int(expires)
        except (TypeError, ValueError):
            raise Unauthorized("malformed file URL") from None
        if not isinstance(sig, str) or not hmac.compare_digest(sig, self._sign(action, file_id, expires)):
            raise Unauthorized("invalid file URL signature")
        if expires < time.time():
            raise Unauthorized("file URL expired")
        return self.get(file_id)

    # -- bytes ---------------------------------------------------------------------------------

    async def upload(self, file: File, content_type: str | None, chunks) -> File:
        """Receive exactly the declared number of bytes with the declared content type."""
        if file.sha256 is not None:
            raise Invalid("this file was already uploaded", field="file")
        if content_type is None or content_type.split(";")[0].strip() != file.content_type:
            raise Invalid(f"content type must be {file.content_type}", field="content_type")
        writer = self.blobs.writer(file.size)
        try:
            async for chunk in chunks:
                writer.write(chunk)
            if writer.size != file.size:
                raise Invalid(f"expected {file.size} bytes, got {writer.size}", field="size")
            digest = await trio.to_thread.run_sync(writer.commit)
        except BlobTooLarge:
            writer.abort()
            raise TooLarge(f"this file was declared as {file.size} bytes") from None
        except BaseException:
            writer.abort()
            raise

        def uploaded_txn(txn: Txn) -> File:
            current = txn.get(T.fileid_file, T.fileid_file.key(file.id))
            if current is None:
                raise NotFound("file not found", kind="file", id=file.id)
            current = msgspec.structs.replace(current, sha256=digest)
            txn.put(T.fileid_file, T.fileid_file.key(file.id), current)
            return current

        return await self.store.write(uploaded_txn)

    def path(self, file: File):
        if file.sha256 is None:
            raise NotFound("the file has not been uploaded yet", kind="file", id=file.id)
        return self.blobs.path(file.sha256)
