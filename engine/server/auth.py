"""Write endpoints: off unless the server has a token, and then only with that token."""
from __future__ import annotations

import hmac

from fastapi import Depends, Request

from .errors import ApiError
from .state import ServerState, get_state


def require_token(request: Request, state: ServerState = Depends(get_state)) -> None:
    """FastAPI dependency for write routes: ``Authorization: Bearer TOKEN``."""
    if not state.writes_enabled:
        raise ApiError(403, "writes_disabled",
                       "write endpoints are off; start the server with a token (earmark serve --token ...) to enable them")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), state.token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong token; send 'Authorization: Bearer TOKEN'")
