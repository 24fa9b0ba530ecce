"""Issue 12 item 5: the bytes a BMC is sent are the bytes whose sha256 was checked.

An https:// image is downloaded once per run into a private copy, checked, and that copy is pushed
(multipart) to every BMC: no BMC is told to fetch the URL, so an image server that changes the file
after the check cannot get other bytes flashed. A BMC that offers no multipart push fails its node.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from support.provision_lab import Lab, assert_journal_complete, open_store

from clusterctl.sim.inventory import FIRMWARE, firmware_file_name, lab_firmware_image

NODES = 2
BIOS_FILE = firmware_file_name("BIOS", FIRMWARE["BIOS"])
VERIFIED = lab_firmware_image("BIOS", FIRMWARE["BIOS"])
SWAPPED = lab_firmware_image("BIOS", "6.6.6")  # what the server hands out after the first download


Reply = tuple[int, dict[str, str], bytes]


class ImageServer:
    """HTTPS on loopback (a throwaway CA): the n-th GET of a path gets its n-th reply, the last one after."""

    def __init__(self, tmp_path: Path, replies: dict[str, list[Reply]]) -> None:
        ca = trustme.CA()
        self.ca_file = tmp_path / "image-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.gets: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.gets.append(self.path)
                answers = replies.get(self.path) or [(404, {}, b"")]
                status, headers, body = answers[min(server.gets.count(self.path), len(answers)) - 1]
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(name="serve")
def serve_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """serve(replies) -> a running ImageServer whose CA this process trusts (SSL_CERT_FILE, as a site would)."""
    started: list[ImageServer] = []

    def serve(replies: dict[str, list[Reply]]) -> ImageServer:
        server = ImageServer(tmp_path, replies)
        started.append(server)
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        return server

    try:
        yield serve
    finally:
        for server in started:
            server.stop()


@pytest.fixture(name="private_tmp")
def private_tmp_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the image copies go under, to see them made and removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def point_bios_at(lab: Lab, url: str) -> None:
    text, count = re.subn(rf"image: .*/firmware/{re.escape(BIOS_FILE)}\"?", f"image: {url}",
                          lab.inventory.read_text())
    assert count == 1
    lab.inventory.write_text(text)


def test_bmcs_get_the_verified_bytes_though_the_server_changes_the_file(
    lab: Lab, serve: Any, private_tmp: Path
) -> None:
    path = f"/fw/{BIOS_FILE}"
    image_server = serve({path: [(200, {}, VERIFIED), (200, {}, SWAPPED)]})
    lab.up(NODES, time_scale=1000)
    point_bios_at(lab, image_server.base + path)

    code, summary, err = lab.provision()
    assert code == 0, (summary, err)
    assert summary["ready"] == NODES and not summary["failed"]
    assert image_server.gets == [path]  # downloaded once for the whole run
    verified = hashlib.sha256(VERIFIED).hexdigest()
    for node, server in lab.status().items():
        bios = [p["sha256"] for p in server["images_pushed"] if p["file"] == BIOS_FILE]
        assert bios == [verified], (node, server["images_pushed"])  # pushed, once, the checked bytes
        assert server["firmware"]["bios"] == FIRMWARE["BIOS"], node
    assert list(private_tmp.iterdir()) == []  # the private copies are gone with the run


def test_a_bmc_without_multipart_push_fails_its_node_before_any_intent(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clusterctl.provision.stages import firmware

    real = firmware.update_service
    victim = "gpu0002"

    async def without_push(client: Any) -> dict[str, Any]:
        service = await real(client)
        if client.name == victim:
            service.pop("MultipartHttpPushUri", None)
        return service

    monkeypatch.setattr(firmware, "update_service", without_push)
    lab.up(NODES, time_scale=1000)
    code, summary, err = lab.provision()
    assert code == 1, (summary, err)
    failed = {f["node"]: f for f in summary["failed"]}
    assert list(failed) == [victim] and failed[victim]["stage"] == "firmware"
    assert "MultipartHttpPushUri" in failed[victim]["reason"], failed[victim]["reason"]
    assert "never has a BMC fetch a URL" in failed[victim]["reason"]
    status = lab.status()
    assert status[victim]["images_pushed"] == [] and status[victim]["jobs"] == {}
    store = open_store()
    try:
        assert not store.events(0, node=victim, kind="firmware.intent")
        assert_journal_complete(store)
    finally:
        store.close()


class NoFiles:
    """An inventory stand-in for URL images (only `file:` images need one)."""

    def resolve_path(self, path: str) -> Path:
        raise AssertionError(path)


def target(url: str, content: bytes = VERIFIED) -> Any:
    from clusterctl.inventory.models import FirmwareTarget

    return FirmwareTarget(version=FIRMWARE["BIOS"], image=url, sha256=hashlib.sha256(content).hexdigest())


def test_one_private_download_shared_by_every_caller(serve: Any, private_tmp: Path) -> None:
    import asyncio
    import stat

    from clusterctl.provision.images import ImageCheck

    server = serve({"/old/BIOS": [(302, {"Location": f"/fw/{BIOS_FILE}"}, b"")],
                    f"/fw/{BIOS_FILE}": [(200, {}, VERIFIED), (200, {}, SWAPPED)]})
    images = ImageCheck(NoFiles())  # type: ignore[arg-type]

    async def scenario() -> list[Path]:
        return await asyncio.gather(*(images.verify(c, target(server.base + "/old/BIOS")) for c in "ABC"))

    paths = asyncio.run(scenario())
    assert server.gets == ["/old/BIOS", f"/fw/{BIOS_FILE}"]  # an https redirect is followed, once
    assert len(set(paths)) == 1 and paths[0].read_bytes() == VERIFIED and paths[0].name == "BIOS"
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600
    for folder in (paths[0].parent, paths[0].parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    images.close()
    assert list(private_tmp.iterdir()) == []


def test_downloads_refused_mismatched_or_too_large_fail_the_image(
    serve: Any, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from clusterctl.errors import NodeCheckFailed
    from clusterctl.provision import images as images_module

    server = serve({"/down": [(302, {"Location": "http://127.0.0.1:9/BIOS-2.3.5.bin"}, b"")],
                    "/swapped.bin": [(200, {}, SWAPPED)], "/big.bin": [(200, {}, VERIFIED * 2)],
                    "/gone.bin": [(404, {}, b"")]})
    monkeypatch.setattr(images_module, "MAX_IMAGE_BYTES", len(VERIFIED))
    images = images_module.ImageCheck(NoFiles())  # type: ignore[arg-type]
    cases = {"/down": "refused redirect from https:// to http://", "/swapped.bin": "inventory says",
             "/big.bin": f"larger than {len(VERIFIED)} bytes", "/gone.bin": "404"}
    for path, needle in cases.items():
        with pytest.raises(NodeCheckFailed, match=needle):
            asyncio.run(images.verify("BIOS", target(server.base + path)))
    images.close()
    assert list(private_tmp.iterdir()) == []
