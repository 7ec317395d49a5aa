"""Large uploads: a limit, progress in the page, and a way to stop one midway.

``POST /uploads/{name}`` takes the file as the raw body, up to
``max_body_size`` (past it the client gets 413 and the handler never sees
the body). While the body arrives, ``POST /uploads/{name}/cancel`` stops it
from another request with ``request.cancel_io()`` (IIS's ``CancelIo``): the
pending read raises ``IOCancelledError``, and the upload's handler still
answers, with 409. That is not a disconnect: the token is not set.

The page shows the upload's progress with the browser's own
``XMLHttpRequest.upload.onprogress``.

Run it with ``trioweb run examples.upload:app`` and open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import hashlib
import logging
from typing import final

import attrs

from trioweb import App, HTTPError, IOCancelledError, Request, Response

logger = logging.getLogger("upload")

LIMIT = 64 * 1024 * 1024  # bytes

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Upload</title></head>
<body>
  <input type="file" id="file"> <button id="send">Upload</button> <button id="stop">Stop</button>
  <progress id="progress" max="100" value="0"></progress> <span id="result"></span>
  <script>
    document.getElementById("send").onclick = () => {
      const file = document.getElementById("file").files[0];
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/uploads/" + encodeURIComponent(file.name));
      xhr.upload.onprogress = (event) => {
        document.getElementById("progress").value = 100 * event.loaded / event.total;
      };
      xhr.onload = () => document.getElementById("result").textContent = xhr.responseText;
      xhr.send(file);
      document.getElementById("stop").onclick = () =>
        fetch("/uploads/" + encodeURIComponent(file.name) + "/cancel", {method: "POST"});
    };
  </script>
</body>
</html>
"""


@final
@attrs.define(eq=False)
class Uploads:
    """The uploads in progress (their requests, to cancel their reads) and the ones stored."""

    receiving: dict[str, Request] = attrs.field(factory=dict)
    stored: dict[str, dict[str, object]] = attrs.field(factory=dict)


def create_app(uploads: Uploads | None = None, *, limit: int = LIMIT) -> App:
    """The upload app, with ``limit`` bytes per upload."""
    uploads = uploads or Uploads()
    app = App()

    @app.get("/")
    async def page() -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8")

    @app.post("/uploads/{name}", max_body_size=limit)
    async def upload(name: str, request: Request) -> dict[str, object]:
        if name in uploads.receiving:
            raise HTTPError(409, f"{name} is already being uploaded")
        uploads.receiving[name] = request
        logger.info("receiving %s", name)
        try:
            body = await request.body()
        except IOCancelledError:
            logger.info("upload of %s stopped", name)
            raise HTTPError(409, f"the upload of {name} was stopped") from None
        finally:
            del uploads.receiving[name]
        stored = {"name": name, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        uploads.stored[name] = stored
        return stored

    @app.post("/uploads/{name}/cancel")
    async def cancel(name: str) -> dict[str, object]:
        request = uploads.receiving.get(name)
        if request is None:
            raise HTTPError(404, f"no upload of {name} in progress")
        request.cancel_io()
        return {"name": name, "stopping": True}

    @app.get("/uploads/{name}")
    async def stored(name: str) -> dict[str, object]:
        if name in uploads.receiving:
            return {"name": name, "state": "receiving"}
        if name in uploads.stored:
            return {**uploads.stored[name], "state": "stored"}
        raise HTTPError(404, f"no upload of {name}")

    return app


app = create_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=8000)
