"""Who may talk to `deskpilot mcp --transport http`: a bearer token, and Host headers that follow `--host`.

Anyone who can reach the port could otherwise drive the desktop (start apps,
read the screen), including apps of other sandboxes started with `--network`.
So HTTP always needs a token: a random one printed on stderr at start (like
the live page's URL), or one the user keeps in `$DESKPILOT_MCP_TOKEN` or a
file (`--token-file`). Never a command-line value: `ps` shows those to every
local user. The check is the SDK's bearer-auth hook (`TokenVerifier`), with a
constant-time comparison.

The Host check guards against DNS rebinding (a web page whose name suddenly
resolves to this machine). It follows `--host`: a server bound to one address
accepts that address (and, on loopback, `localhost`); a server bound to every
address (0.0.0.0, ::) accepts any IP literal (a rebinding needs a name),
`localhost`, this machine's own names, and the names given with `--allowed-host`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from deskpilot.errors import UsageError

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

TOKEN_ENV = "DESKPILOT_MCP_TOKEN"
MIN_TOKEN_CHARS = 16
CLIENT_ID = "deskpilot-mcp-client"


def load_token(token_file: Path | None, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(token, where it came from): the file, else the environment variable, else a new random one."""
    from deskpilot.agent.config.yamllines import read_user_file

    env = os.environ if environ is None else environ
    if token_file is not None:
        token, origin = read_user_file(Path(token_file), "token file").strip(), f"--token-file {token_file}"
    elif env.get(TOKEN_ENV):
        token, origin = env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return secrets.token_urlsafe(32), "random"
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise UsageError(f"the MCP token from {origin} must be at least {MIN_TOKEN_CHARS} printable characters "
                         f"without spaces")
    return token, origin


class StaticTokenVerifier:
    """The SDK's TokenVerifier for one shared secret (constant-time compare)."""

    def __init__(self, token: str):
        self._token = token.encode("utf-8")

    async def verify_token(self, token: str) -> "AccessToken | None":
        from mcp.server.auth.provider import AccessToken

        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._token):
            return AccessToken(token="(the server's token)", client_id=CLIENT_ID, scopes=[])
        return None


# -- Host headers --------------------------------------------------------------------
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_wildcard(host: str) -> bool:
    return host in WILDCARD_HOSTS


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_part(value: str) -> str:
    """'[::1]:8765' -> '::1', 'desk.example:80' -> 'desk.example', lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class HostRule:
    """Which Host (and Origin) headers a server bound to `host` answers."""

    def __init__(self, host: str, extra: Iterable[str] = ()):
        self.wildcard = is_wildcard(host)
        names = {_host_part(n) for n in extra if n}
        if self.wildcard:
            names |= {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            names.add(_host_part(host))
            if is_loopback(host):
                names |= set(LOOPBACK_NAMES)
        self.names = frozenset(names)

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = _host_part(host_header)
        return host in self.names or (self.wildcard and _ip_literal(host))

    def allows_origin(self, origin: str | None) -> bool:
        if not origin:  # same-origin requests and non-browser clients send none
            return True
        scheme, sep, rest = origin.partition("://")
        return bool(sep) and scheme in ("http", "https") and self.allows(rest.split("/", 1)[0])


def host_guard(app, rule: HostRule):
    """ASGI middleware: 421 for a Host (or Origin) the rule does not allow, before anything else runs."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            bad = None
            if not rule.allows(headers.get("host")):
                bad = "Invalid Host header"
            elif not rule.allows_origin(headers.get("origin")):
                bad = "Invalid Origin header"
            if bad is not None:
                body = (f"{bad}: this server answers {', '.join(sorted(rule.names)) or 'its --host'}"
                        f"{' and IP addresses' if rule.wildcard else ''} (add names with --allowed-host)\n").encode()
                await send({"type": "http.response.start", "status": 421,
                            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded
