"""Query-by-example uploads: a byte limit enforced while the body arrives, then a checked temp file."""
from __future__ import annotations

import json
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..audio import AUDIO_EXTENSIONS, probe
from .errors import ApiError

MULTIPART_SLACK = 64 * 1024  # bytes of form boundaries and fields allowed on top of the file


class UploadSizeLimit:
    """ASGI middleware: bodies of ``paths`` over ``max_bytes`` get a 413 before they reach the disk.

    The multipart parser spools a whole upload before a route runs, so the limit has to act
    on the raw body: first on Content-Length, then by counting bytes (chunked uploads).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        rejected = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client went away, so it stops reading.
                    rejected = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:  # after the 413, whatever the app says is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    async def _reject(self, send: Send) -> None:
        mb = (self.max_bytes - MULTIPART_SLACK) / 1e6
        body = json.dumps({"error": {"code": "upload_too_large",
                                     "message": f"upload larger than the server's limit of {mb:g} MB"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def saved_upload(upload: UploadFile, directory: Path, max_bytes: int) -> Iterator[Path]:
    """Copy ``upload`` into ``directory`` under a fresh name, check it decodes, delete it afterwards."""
    suffix = Path(upload.filename or "").suffix.lower()
    suffix = suffix if suffix in AUDIO_EXTENSIONS else ""  # never trust a client's name beyond its type
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"query-{uuid.uuid4().hex}{suffix}"
    try:
        upload.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, length=1 << 20)
        size = path.stat().st_size
        if size > max_bytes:
            raise ApiError(413, "upload_too_large", f"upload of {size} bytes is over the limit of {max_bytes} bytes")
        if size == 0:
            raise ApiError(400, "empty_upload", "the uploaded file is empty")
        probe(path)  # AudioError (422) with the reason when it is not decodable audio
        yield path
    finally:
        path.unlink(missing_ok=True)
