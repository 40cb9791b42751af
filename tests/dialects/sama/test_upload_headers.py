"""Uploads are served from the API origin as untrusted content: nosniff, a sandboxing CSP, inline only
for an allow-list of image/audio/video types (never HTML or SVG), filenames encoded per RFC 6266/5987
— on 200, 206, 416 and HEAD alike."""

from urllib.parse import unquote

import httpx
import pytest

from .client import create_user, device

CSP = "default-src 'none'; sandbox"
HTML = b"<!doctype html><script>alert(document.cookie)</script>"


async def _upload(server, nursery, name: str, content_type: str, body: bytes) -> str:
    """Declare, upload and return a signed download URL for one file."""
    await create_user(server, nursery, "uploader")
    c = await device(server, nursery, "uploader", "d1")
    files = (await c.ok("create_files", [{"name": name, "size": len(body), "content_type": content_type}]))["files"]
    async with httpx.AsyncClient() as http:
        r = await http.put(files[0]["upload_url"], content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text
    return (await c.ok("get_file_urls", {"file_ids": [files[0]["_id"]]}))["file_urls"][0]


def _assert_hardened(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff", r.headers
    assert r.headers["content-security-policy"] == CSP, r.headers


async def test_html_upload_is_an_attachment_with_nosniff_and_csp(server, nursery):
    url = await _upload(server, nursery, "page.html", "text/html", HTML)
    async with httpx.AsyncClient() as http:
        full = await http.get(url)
        part = await http.get(url, headers={"Range": "bytes=0-8"})
        head = await http.head(url)
        beyond = await http.get(url, headers={"Range": f"bytes={len(HTML) + 10}-"})
    assert full.status_code == 200 and full.content == HTML
    assert part.status_code == 206 and part.content == HTML[:9]
    assert head.status_code == 200 and head.content == b""
    assert beyond.status_code == 416
    for r in (full, part, head, beyond):
        _assert_hardened(r)
    for r in (full, part, head):
        assert r.headers["content-disposition"] == 'attachment; filename="page.html"'
        assert r.headers["content-type"].startswith("text/html")


async def test_svg_upload_is_an_attachment(server, nursery):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    url = await _upload(server, nursery, "logo.svg", "image/svg+xml", svg)
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment;")
    _assert_hardened(r)


async def test_image_upload_is_inline(server, nursery):
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    url = await _upload(server, nursery, "cat.png", "image/png", png)
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
        part = await http.get(url, headers={"Range": "bytes=-4"})
    assert r.status_code == 200 and r.content == png
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'inline; filename="cat.png"'
    assert part.status_code == 206 and part.headers["content-disposition"] == 'inline; filename="cat.png"'
    _assert_hardened(r)
    _assert_hardened(part)


async def test_non_ascii_and_quoted_filename(server, nursery):
    name = 'отчёт "final" \\ 100%.txt'
    url = await _upload(server, nursery, name, "text/plain", b"hello")
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200
    cd = r.headers["content-disposition"]
    assert cd.isascii()
    disposition, fallback, star = [p.strip() for p in cd.split(";")]
    assert disposition == "attachment"
    assert fallback == 'filename="_____ _final_ _ 100_.txt"'
    assert star.startswith("filename*=UTF-8''")
    assert unquote(star.removeprefix("filename*=UTF-8''"), encoding="utf-8") == name
    _assert_hardened(r)


@pytest.mark.parametrize("name,fallback", [
    ("plain.txt", "plain.txt"),
    ('a"b.txt', "a_b.txt"),
    ("a\\b.txt", "a_b.txt"),
    ("a\r\nContent-Type: text/html.txt", "a__Content-Type: text/html.txt"),
    ("日本.png", "__.png"),
    ("\u202egnp.exe", "_gnp.exe"),
    ("", "file"),
])
def test_content_disposition_encoding(name, fallback):
    from chatd.web.files import content_disposition

    header = content_disposition("attachment", name)
    assert header.isascii() and "\r" not in header and "\n" not in header
    assert f'filename="{fallback}"' in header
    if fallback == name:
        assert "filename*" not in header
    else:
        star = header.split("filename*=UTF-8''", 1)[1]
        assert all(c.isalnum() or c in "!#$&+-.^_`|~%" for c in star), star
        assert unquote(star, encoding="utf-8") == name


@pytest.mark.parametrize("declared,served", [
    ("image/png", ("image/png", "inline")),
    ("IMAGE/JPEG; foo=bar", ("image/jpeg", "inline")),
    ("video/mp4", ("video/mp4", "inline")),
    ("audio/mpeg", ("audio/mpeg", "inline")),
    ("image/svg+xml", ("image/svg+xml", "attachment")),
    ("text/html", ("text/html", "attachment")),
    ("application/xhtml+xml", ("application/xhtml+xml", "attachment")),
    ("application/pdf", ("application/pdf", "attachment")),
    ("text/plain; charset=utf-8", ("text/plain; charset=utf-8", "attachment")),
    ("not a type", ("application/octet-stream", "attachment")),
    ("text/plain;\r\nX-Evil: 1", ("application/octet-stream", "attachment")),
])
def test_served_type(declared, served):
    from chatd.web.files import served_type

    assert served_type(declared) == served
