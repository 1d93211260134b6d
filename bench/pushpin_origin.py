"""The GRIP origin behind Pushpin in the benchmark: Pushpin proxies every client WebSocket to it as
WebSocket-over-HTTP (``over_http`` in the route), and it answers a connection's ``OPEN`` with
GRIP ``subscribe`` control messages for the channels named in the path (``/ws/a,b``) and one
``{"type":"subscribed"}`` text frame, so the client knows it is subscribed.  Pushpin then
delivers every publish to the channel without asking the origin again: the origin is busy only
while clients connect, which is why it runs as a helper on the load generator's core.

``python -m bench.pushpin_origin PORT`` serves it (uvicorn, one worker) on 127.0.0.1."""

from __future__ import annotations

import sys

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

EVENTS = "application/websocket-events"
# With GRIP on, Pushpin passes an origin's text to the client only behind the ``m:`` prefix.
SUBSCRIBED = b'm:{"type":"subscribed"}'


def text_event(content: bytes) -> bytes:
    """One ``TEXT`` event of the WebSocket-over-HTTP protocol."""
    return b"TEXT %x\r\n%s\r\n" % (len(content), content)


def open_reply(channels: list[str]) -> bytes:
    """Accept the connection, subscribe it to ``channels``, then tell the client it is subscribed."""
    controls = [b"c:" + msgspec.json.encode({"type": "subscribe", "channel": c}) for c in channels]
    return b"OPEN\r\n" + b"".join(text_event(c) for c in [*controls, SUBSCRIBED])


async def websocket_events(request: Request) -> Response:
    body = await request.body()
    headers = {"Sec-WebSocket-Extensions": "grip"}
    if body.startswith(b"OPEN"):
        channels = [c for c in request.path_params["channels"].split(",") if c]
        if not channels:
            return PlainTextResponse("name at least one channel: /ws/<channel>[,<channel>...]", 400)
        return Response(open_reply(channels), media_type=EVENTS, headers=headers)
    if b"CLOSE" in body.split(b"\r\n", 1)[0]:
        return Response(b"CLOSE\r\n", media_type=EVENTS, headers=headers)
    # Client text frames, pings and disconnects need no answer beyond an empty event list.
    return Response(b"", media_type=EVENTS, headers=headers)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/ws/{channels}", websocket_events, methods=["POST"]),
    ]
)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m bench.pushpin_origin PORT", file=sys.stderr)
        return 2
    # zurl keeps its connections to the origin open and reuses them; uvicorn's default 5 s keep-alive
    # closed them under it, and a request sent on a connection being closed came back as a 502.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(args[0]),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=3600,
        backlog=4096,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
