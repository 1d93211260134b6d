"""Request plumbing shared by the auth routes: the service object, the caller, and bodies decoded
in the reference's order (a body that is not JSON at all fails first, then authentication and the
global permission, then the schema)."""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.datastructures import UploadFile
from starlette.requests import Request

from auth.passwords import PASSWORD_MAX
from auth.service import AuthService
from relaycore import jsonbody
from relaycore.errors import InvalidInput
from relaycore.models import Permission, User
from relaycore.web import current_user

T = TypeVar("T")
_FORM_VALUE_MAX = PASSWORD_MAX


def service(request: Request) -> AuthService:
    svc: AuthService = request.app.state.auth
    return svc


async def caller(request: Request, permission: Permission | None = None) -> User:
    """The authenticated, active caller; 403 if ``permission`` is given and missing."""
    user = await current_user(request)
    if permission is not None:
        service(request).ctx.authorizer.require(user, permission)
    return user


async def json_body(request: Request) -> bytes | None:
    """The body as compact JSON (None if empty); 422/400 here, before authentication, if it is
    not JSON at all."""
    return jsonbody.compact(await request.body())


def decode(body: bytes | None, schema: type[T]) -> T:
    """``body`` decoded into ``schema``; FastAPI-style 422 on any mismatch."""
    return jsonbody.decode(body, schema)


async def login_form(request: Request) -> tuple[str, str]:
    """(username, password) from the OAuth2 password form; ``scope``, ``client_id`` and
    ``client_secret`` are accepted and ignored, ``grant_type`` must be "password" when given."""
    async with request.form(max_files=0, max_fields=32) as form:
        values = {k: form.get(k) for k in ("username", "password", "grant_type")}
    problems: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, UploadFile):
            problems.append(_item("string_type", key, "Input should be a valid string"))
        elif value:  # an empty field counts as missing, as in FastAPI forms
            if len(value) > _FORM_VALUE_MAX:
                msg = f"String should have at most {_FORM_VALUE_MAX} characters"
                problems.append(_item("string_too_long", key, msg))
            else:
                fields[key] = value
        elif key != "grant_type":
            problems.append(_item("missing", key, "Field required"))
    grant = fields.get("grant_type")
    if grant is not None and grant != "password":
        item = _item("string_pattern_mismatch", "grant_type", "String should match pattern '^password$'")
        problems.append(item | {"input": grant[:64]})
    if problems:
        raise InvalidInput(problems)
    return fields["username"], fields["password"]


def _item(kind: str, field: str, msg: str) -> dict[str, Any]:
    # Never echo a submitted password back.
    return {"type": kind, "loc": ["body", field], "msg": msg, "input": None}


def client_address(request: Request) -> str:
    peer = request.client.host if request.client else None
    return service(request).login.limiter.client_address(peer, request.headers.getlist("x-forwarded-for"))
