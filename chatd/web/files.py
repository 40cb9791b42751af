"""Signed upload and download URLs for attachments, shared by every dialect.

`PUT|POST /files/<id>?action=upload&expires&sig` takes exactly the declared
bytes and content type; `GET /files/<id>?action=download&expires&sig` streams
them with Content-Type, Content-Length and single-range `Range` support.

Uploads are untrusted content served from the API's own origin, so every download
response (200, 206, 416, HEAD) carries `X-Content-Type-Options: nosniff` and
`Content-Security-Policy: default-src 'none'; sandbox`; only a short allow-list of
image, audio and video types is served `inline`, everything else (HTML, SVG, PDF,
text, unknown types) as an `attachment`. The filename is encoded per RFC 6266/5987.
"""

import re
from urllib.parse import quote

import trio
from quart import Blueprint, Response, request

from ..core.errors import ChatdError, Invalid, NotFound, TooLarge, Unauthorized
from .bodies import json_response

STATUS = {Invalid: 400, Unauthorized: 403, NotFound: 404, TooLarge: 413}
CHUNK = 64 * 1024

# Media types a browser renders without running anything the file carries (no SVG: it is a document
# that can hold script; no HTML, XML, PDF or text). Anything else is served as an attachment.
INLINE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg", "audio/opus", "audio/wav", "audio/x-wav",
    "audio/webm", "audio/flac",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
})
# Headers on every response that serves (or refuses to serve a range of) an upload.
UPLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}([ \t]*;[ \t]*{_TOKEN}=({_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*")
# RFC 5987 attr-char, less ALPHA / DIGIT (which quote() always keeps).
_ATTR_CHAR = "!#$&+-.^_`|~"


def content_disposition(disposition: str, name: str) -> str:
    """`inline|attachment; filename="ascii fallback"[; filename*=UTF-8''percent-encoded]` (RFC 6266).

    The quoted fallback has only printable ASCII without `"`, `\\` or `%` (which user agents
    treat inconsistently); anything else becomes `_` there and is carried exactly by `filename*`.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in name).strip() or "file"
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += "; filename*=UTF-8''" + quote(name, safe=_ATTR_CHAR, encoding="utf-8", errors="replace")
    return header


def served_type(declared: str) -> tuple[str, str]:
    """(Content-Type, disposition) for a file declared with `declared` by its uploader."""
    essence = declared.split(";", 1)[0].strip().lower()
    if essence in INLINE_TYPES:
        return essence, "inline"
    if _MEDIA_TYPE.fullmatch(declared.strip()):
        return declared.strip(), "attachment"
    return "application/octet-stream", "attachment"


def _error(exc: ChatdError):
    status = STATUS.get(type(exc), 400)
    return json_response({"status": status, "message": exc.message}, status=status)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `bytes=` range; None to send everything."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else (size, size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if end < start < size:
        return None  # a malformed range (last before first): HTTP says to ignore it
    return start, min(end, size - 1)


def blueprint(core) -> Blueprint:
    bp = Blueprint("files", __name__)

    def parse_id(file_id: str) -> int:
        if not file_id.isdigit() or len(file_id) > 20:
            raise NotFound("file not found")
        return int(file_id)

    @bp.route("/files/<file_id>", methods=["PUT", "POST"])
    async def upload(file_id):
        """PUT /files/<id> — upload the declared bytes to a signed URL."""
        try:
            args = request.args
            file = core.files.verify(parse_id(file_id), "upload", args.get("expires"), args.get("sig"))
            if request.content_length is not None and request.content_length != file.size:
                raise Invalid(f"expected {file.size} bytes, got Content-Length {request.content_length}")
            body = request.body
            if request.content_length == file.size:
                # The declared size, checked above and again while streaming, is this route's limit,
                # not the app-wide max_http_body (Quart keeps that check in private attributes).
                body._max_content_length = None
                body._must_raise = None
            file = await core.files.upload(file, request.headers.get("Content-Type"), body)
        except ChatdError as exc:
            return _error(exc)
        return json_response({"_id": str(file.id), "size": file.size, "content_type": file.content_type})

    @bp.get("/files/<file_id>")
    async def download(file_id):
        """GET /files/<id> — stream an uploaded file from a signed URL (supports Range)."""
        try:
            args = request.args
            file = core.files.verify(parse_id(file_id), "download", args.get("expires"), args.get("sig"))
            path = core.files.path(file)
        except ChatdError as exc:
            return _error(exc)
        size = file.size
        content_type, disposition = served_type(file.content_type)
        headers = {"Accept-Ranges": "bytes", "Content-Type": content_type,
                   "Content-Disposition": content_disposition(disposition, file.name), **UPLOAD_HEADERS}
        span = _range(request.headers.get("Range"), size)
        status = 200
        start, end = 0, size - 1
        if span is not None:
            start, end = span
            if start >= size or start > end:
                return Response(b"", status=416, headers={"Content-Range": f"bytes */{size}", **UPLOAD_HEADERS})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)

        async def stream():
            f = await trio.open_file(path, "rb")
            async with f:
                await f.seek(start)
                left = length
                while left > 0:
                    chunk = await f.read(min(CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

        return Response(stream(), status=status, headers=headers)

    return bp
