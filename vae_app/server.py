"""What the app server adds in front of Streamlit's: a WebSocket is accepted from the app's own page only.

Streamlit 1.67 accepts a WebSocket whose Origin is its own Host, one in `server.corsAllowedOrigins`, and also any
origin whose host is localhost, 127.0.0.1, 0.0.0.0 or this machine's addresses, whatever its port
(`server_util.is_url_from_allowed_origins`); `server.allowedHosts` checks the Host header only (DNS rebinding). So
any page served from another port of this machine (a notebook, a dev server, a page a local program opens) could
drive the app: read its pages and start training. `SameOriginOnly`, an ASGI middleware that runs before Streamlit's
own, refuses such a WebSocket before it is accepted (HTTP 403): only the app's own origin, and the origins listed in
`server.corsAllowedOrigins`, may open one. A client that sends no Origin (not a browser) is let through, as
Streamlit does: the loopback binding is what keeps other machines out.
"""
from __future__ import annotations

from urllib.parse import urlsplit


def _origin_allowed(origin: str, host: str | None, allowed: list[str]) -> bool:
    parts = urlsplit(origin)
    return (host is not None and parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()) \
        or origin.rstrip("/") in [a.rstrip("/") for a in allowed]


class SameOriginOnly:
    """ASGI middleware: a WebSocket from another origin than the app's own is refused before it is accepted."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            origin = headers.get("origin")
            if origin is not None:
                from streamlit import config
                if not _origin_allowed(origin, headers.get("host"), list(config.get_option("server.corsAllowedOrigins"))):
                    await receive()  # the connect event; closing before accepting answers the handshake with 403
                    await send({"type": "websocket.close", "code": 1008})
                    return
        await self.app(scope, receive, send)


def middleware() -> list:
    from starlette.middleware import Middleware
    return [Middleware(SameOriginOnly)]
