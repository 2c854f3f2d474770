"""POST /v1/auth/token (API key → tokens) and POST /v1/auth/refresh (rotating refresh tokens)."""

from __future__ import annotations

from fastapi import APIRouter

from mouthpiece.service.api.deps import BearerDep, ServicesDep, SessionDep, bearer_token
from mouthpiece.service.api.responses import errors
from mouthpiece.service.auth import TokenPair, authenticate_api_key, issue_tokens, rotate_refresh_token
from mouthpiece.service.errors import ApiError
from mouthpiece.service.schemas import RefreshRequest, TokenResponse

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def _response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in, refresh_expires_in=pair.refresh_expires_in)


@router.post("/token", response_model=TokenResponse, responses=errors(401))
def token(credentials: BearerDep, services: ServicesDep, session: SessionDep) -> TokenResponse:
    """Sign in with an API key (`Authorization: Bearer mp_…`): a 15-minute access token and a refresh token."""
    user, key = authenticate_api_key(session, bearer_token(credentials))
    pair = issue_tokens(session, services.tokens, user, key.id)
    session.commit()
    return _response(pair)


@router.post("/refresh", response_model=TokenResponse, responses=errors(401))
def refresh(body: RefreshRequest, services: ServicesDep, session: SessionDep) -> TokenResponse:
    """Trade a refresh token for a new pair. Each refresh token works once; using one twice
    revokes every token of that sign-in."""
    try:
        pair = rotate_refresh_token(session, services.tokens, body.refresh_token)
    except ApiError:
        session.commit()  # keep the family revocation that reuse triggered
        raise
    session.commit()
    return _response(pair)
