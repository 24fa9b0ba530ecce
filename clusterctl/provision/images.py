"""Firmware images: where the bytes are, and proof they are the ones the inventory names (sha256).

An image is hashed once per run however many nodes use it; a mismatch fails every node that
would use it, before any BMC sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from clusterctl.errors import NodeCheckFailed

if TYPE_CHECKING:
    from clusterctl.inventory import Inventory
    from clusterctl.inventory.models import FirmwareTarget

CHUNK = 1 << 20


class ImageCheck:
    """Hashes of images by location, computed once (concurrent callers share the computation)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._hashes: dict[str, asyncio.Task[str]] = {}

    def local_path(self, image: str) -> Path | None:
        if image.startswith("file:"):
            return self.inventory.resolve_path(image[len("file:"):])
        return None

    async def verify(self, component: str, target: FirmwareTarget) -> Path | None:
        """The local file to push (None for a URL the BMC fetches); raises when the digest differs."""
        task = self._hashes.get(target.image)
        if task is None:
            task = self._hashes[target.image] = asyncio.ensure_future(self._digest(target.image))
        try:
            digest = await asyncio.shield(task)
        except OSError as exc:
            raise NodeCheckFailed(f"firmware {component}: cannot read image {target.image}: {exc.strerror}") from exc
        if digest != target.sha256.lower():
            raise NodeCheckFailed(
                f"firmware {component}: image {target.image} has sha256 {digest}, inventory says {target.sha256}"
            )
        return self.local_path(target.image)

    async def _digest(self, image: str) -> str:
        path = self.local_path(image)
        if path is not None:
            return await asyncio.to_thread(_file_sha256, path)
        import httpx

        digest = hashlib.sha256()
        try:
            async with (httpx.AsyncClient(timeout=60.0, follow_redirects=True) as http,
                        http.stream("GET", image) as resp):
                resp.raise_for_status()
                async for chunk in resp.aiter_bytes(CHUNK):
                    digest.update(chunk)
        except httpx.HTTPError as exc:
            raise OSError(0, f"download failed: {type(exc).__name__}: {exc}") from exc
        return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
