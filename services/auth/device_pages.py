"""The HTML of the device verification page (``/auth/device``): pure functions from what to show
to a page.  Every value is escaped here; there is no script, and forms post to this origin only."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from relaycore.store.base import DeviceGrant

STYLE = "/auth/device/style.css"


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)} · Pulsar Relay</title><link rel="stylesheet" href="{STYLE}">'
        '<link rel="icon" href="/console/assets/logo.svg" type="image/svg+xml">'
        f"</head><body><main>\n<h1>{escape(title)}</h1>\n{body}\n</main></body></html>\n"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def _message(error: str | None, note: str | None = None) -> str:
    out = ""
    if error:
        out += f'<p class="error" role="alert">{escape(error)}</p>\n'
    if note:
        out += f'<p class="ok">{escape(note)}</p>\n'
    return out


def _signed_in_as(username: str, csrf: str) -> str:
    return (
        f'<p class="muted">Signed in as <strong>{escape(username)}</strong>. '
        '<form class="inline" method="post" action="/auth/device/signout">'
        f'{_hidden("csrf_token", csrf)}<button class="secondary" type="submit">Sign out</button></form></p>'
    )


def sign_in(
    *, next_path: str, user_code: str, providers: Sequence[tuple[str, str]], error: str | None = None
) -> str:
    """Sign-in with a relay account, and links to each configured identity provider
    ((display name, login URL) pairs, already pointing back to ``next_path``)."""
    code = f'<p>Code: <span class="code">{escape(user_code)}</span></p>\n' if user_code else ""
    links = ""
    if providers:
        items = "".join(f'<a href="{escape(url)}">Sign in with {escape(name)}</a>' for name, url in providers)
        links = f'<div class="providers">{items}</div>\n<p class="muted">or with a relay account:</p>\n'
    form = (
        '<form method="post" action="/auth/device/signin">'
        f"{_hidden('next', next_path)}"
        '<label for="username">Username</label>'
        '<input type="text" id="username" name="username" autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    intro = "<p>Sign in to connect a device to this relay.</p>\n"
    return _page("Sign in", _message(error) + intro + code + links + form)


def enter_code(*, username: str, csrf: str, error: str | None = None, note: str | None = None) -> str:
    form = (
        '<form method="get" action="/auth/device">'
        '<label for="user_code">Code shown by the device</label>'
        '<input type="text" id="user_code" name="user_code" autocomplete="off" autocapitalize="characters"'
        ' spellcheck="false" placeholder="BCDF-GHJK" required autofocus>'
        '<button type="submit">Continue</button></form>'
    )
    return _page("Connect a device", _message(error, note) + _signed_in_as(username, csrf) + form)


def confirm(*, username: str, csrf: str, user_code: str, grant: DeviceGrant) -> str:
    """What the device asked for, and the two buttons."""
    what = (
        f'<p>Code: <span class="code">{escape(user_code)}</span></p>\n'
        f"<p>The device says it is <strong>{escape(grant.client_hint)}</strong>.</p>\n"
        "<p>Approving lets it act on this relay as you, until you revoke its session"
        + (
            ", and also issues a second, separate session that it hands to another service "
            "(for example Galaxy)"
            if grant.pair
            else ""
        )
        + ".</p>\n"
        + (f'<p class="muted">Requested scope: {escape(grant.scope)}</p>\n' if grant.scope else "")
        + "<p>Only approve if you started this sign-in yourself and the code matches the device.</p>\n"
    )
    hidden = _hidden("user_code", user_code) + _hidden("csrf_token", csrf)
    buttons = (
        '<div class="row">'
        f'<form method="post" action="/auth/device/approve">{hidden}'
        '<button type="submit">Approve</button></form>'
        f'<form method="post" action="/auth/device/deny">{hidden}'
        '<button class="deny" type="submit">Deny</button></form></div>'
    )
    return _page("Approve this device?", _signed_in_as(username, csrf) + what + buttons)


def done(*, username: str, csrf: str, approved: bool) -> str:
    if approved:
        note = "Device approved. You can close this page and return to your device."
        return _page("Device connected", _message(None, note) + _signed_in_as(username, csrf))
    note = "Sign-in denied. The device will not get access."
    return _page("Device denied", _message(None, note) + _signed_in_as(username, csrf))


def problem(title: str, error: str) -> str:
    again = '<p><a href="/auth/device">Start again</a></p>'
    return _page(title, _message(error) + again)


def device_link(user_code: str) -> str:
    return "/auth/device?" + urlencode({"user_code": user_code}) if user_code else "/auth/device"
