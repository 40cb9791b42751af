"""Content-addressed file bytes under `<data>/files/ab/cdef…` (sha256), written atomically."""

import hashlib
import os
import secrets
from pathlib import Path


class BlobTooLarge(Exception):
    pass


class Blobs:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def writer(self, limit: int) -> "BlobWriter":
        return BlobWriter(self, limit)


class BlobWriter:
    """Receives chunks (synchronously; call from a thread for large files), hashes, then commits."""

    def __init__(self, blobs: Blobs, limit: int):
        self.blobs = blobs
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        self._tmp = blobs.root / "tmp" / secrets.token_hex(16)
        self._f = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise BlobTooLarge()
        self._hash.update(chunk)
        self._f.write(chunk)

    def commit(self) -> str:
        """fsync and move into place; returns the sha256 hex digest."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        digest = self._hash.hexdigest()
        final = self.blobs.path(digest)
        final.parent.mkdir(exist_ok=True)
        os.replace(self._tmp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)
