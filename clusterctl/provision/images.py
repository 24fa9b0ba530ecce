"""Firmware images: one private copy per run, and proof it holds the bytes the inventory names (sha256).

Every image, `file:` or URL, is copied once per run into a private directory (0700, files 0600,
removed by `close`) and hashed while it is copied; the BMCs are then sent that copy (multipart push),
never the URL. So the bytes flashed are the bytes checked, even if the source changes meanwhile.
A mismatch fails every node that would use the image, before any BMC sees it.

Downloads follow redirects but never from https:// down to http://, stop at `MAX_IMAGE_BYTES`, and
give up when the server is silent for `READ_TIMEOUT_S`. A private CA for the image server is trusted
through the standard `SSL_CERT_FILE` / `SSL_CERT_DIR` environment variables.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from clusterctl.errors import NodeCheckFailed

if TYPE_CHECKING:
    import httpx

    from clusterctl.inventory import Inventory
    from clusterctl.inventory.models import FirmwareTarget

CHUNK = 1 << 20
MAX_IMAGE_BYTES = 4 << 30
"""Largest image accepted (XE9680 bundles are well under 1 GiB): a runaway download stops here."""
READ_TIMEOUT_S = 60.0
MAX_REDIRECTS = 5


class ImageTooLarge(OSError):
    pass


class ImageCheck:
    """Verified private copies of images by location, made once (concurrent callers share the work)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._copies: dict[str, asyncio.Task[tuple[Path, str]]] = {}
        self._dir: tempfile.TemporaryDirectory[str] | None = None  # removed by close(), else when collected
        self._made = 0

    def local_path(self, image: str) -> Path | None:
        if image.startswith("file:"):
            return self.inventory.resolve_path(image[len("file:"):])
        return None

    async def verify(self, component: str, target: FirmwareTarget) -> Path:
        """The private copy of the image to push to the BMC; raises when its digest differs."""
        task = self._copies.get(target.image)
        if task is None:
            task = self._copies[target.image] = asyncio.ensure_future(self._copy(target.image))
        try:
            path, digest = await asyncio.shield(task)
        except OSError as exc:
            raise NodeCheckFailed(f"firmware {component}: cannot read image {target.image}: {exc.strerror}") from exc
        if digest != target.sha256.lower():
            raise NodeCheckFailed(
                f"firmware {component}: image {target.image} has sha256 {digest}, inventory says {target.sha256}"
            )
        return path

    def close(self) -> None:
        """Remove the private copies (at the end of the run)."""
        for task in self._copies.values():
            task.cancel()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _destination(self, name: str) -> Path:
        """Where the copy goes: named like the source (BMCs tell package types by name), one folder per image."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="clusterctl-images-")  # mode 0700
        self._made += 1
        folder = Path(self._dir.name) / str(self._made)
        folder.mkdir(mode=0o700)
        return folder / (name if name not in ("", ".", "..") else "image.bin")

    async def _copy(self, image: str) -> tuple[Path, str]:
        source = self.local_path(image)
        dest = self._destination(source.name if source else Path(unquote(urlsplit(image).path)).name)
        if source is not None:
            return dest, await asyncio.to_thread(_copy_file, source, dest)
        with _private_file(dest) as out:
            return dest, await _download(image, out)


def _private_file(path: Path) -> IO[bytes]:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _copy_file(source: Path, dest: Path) -> str:
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as fh, _private_file(dest) as out:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            size += len(chunk)
            if size > MAX_IMAGE_BYTES:
                raise ImageTooLarge(0, f"larger than {MAX_IMAGE_BYTES} bytes")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


async def _download(url: str, out: IO[bytes]) -> str:
    """Stream `url` into `out`, hashing it; redirects followed by hand so none goes https -> http."""
    import httpx

    digest, size = hashlib.sha256(), 0
    try:
        async with httpx.AsyncClient(timeout=READ_TIMEOUT_S, follow_redirects=False) as http:
            resp = await _get_following(http, url)
            try:
                resp.raise_for_status()
                if int(resp.headers.get("content-length") or 0) > MAX_IMAGE_BYTES:
                    raise ImageTooLarge(0, f"larger than {MAX_IMAGE_BYTES} bytes")
                async for chunk in resp.aiter_bytes(CHUNK):
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise ImageTooLarge(0, f"larger than {MAX_IMAGE_BYTES} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await resp.aclose()
    except httpx.HTTPError as exc:
        raise OSError(0, f"download failed: {type(exc).__name__}: {exc}") from exc
    return digest.hexdigest()


async def _get_following(http: httpx.AsyncClient, url: str) -> httpx.Response:
    request = http.build_request("GET", url)
    for _ in range(MAX_REDIRECTS + 1):
        resp = await http.send(request, stream=True)
        if not resp.is_redirect or resp.next_request is None:
            return resp
        await resp.aclose()
        nxt = resp.next_request
        if request.url.scheme == "https" and nxt.url.scheme != "https":
            raise OSError(0, f"refused redirect from https:// to {nxt.url.scheme}://")
        request = nxt
    raise OSError(0, f"more than {MAX_REDIRECTS} redirects")
