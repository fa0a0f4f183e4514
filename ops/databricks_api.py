"""A small Databricks workspace REST client for ``ops``: tokens that last the job, typed errors.

Why not the Databricks SDK: ``ops`` needs a dozen GET/POST calls (Jobs 2.1, workspace list,
get-status and export, MLflow get-by-name, Unity Catalog models) and must be testable against a
fake server on 127.0.0.1; urllib does that without a new dependency.

Tokens (``token_source``), in this order:

* ``DATABRICKS_AUTH_TYPE=github-oidc`` (CI): this job's GitHub OIDC token is exchanged at
  ``<host>/oidc/v1/token`` for a Databricks token of ``DATABRICKS_CLIENT_ID`` (RFC 8693, the
  exchange databricks-sdk-go v0.93.0 ``config/experimental/auth/oidc`` makes). A federated token
  lives only as long as the GitHub token it came from (Databricks docs, oauth-federation-exchange),
  so the exchange is made again when half the token's life has passed and on any 401: a run that
  outlives one token keeps its access. The GitHub token is requested for the environment file's
  ``databricks.oidc_audience`` (never a default: it must equal the federation policy's
  ``audiences``).
* ``DATABRICKS_TOKEN``: a token made elsewhere (a personal access token, ``databricks auth token``);
  a 401 on it is final.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ops.runner import CommandError, UsageError

HTTP_TIMEOUT = 60.0
TOKEN_EXCHANGE_PATH = "/oidc/v1/token"
TOKEN_EXCHANGE_FORM = {
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "scope": "all-apis",
}
# Without expires_in in the exchange's answer: assume this much life (GitHub's ID tokens last minutes).
ASSUMED_LIFETIME = 300.0
USER_AGENT = "mlops-infra-ops"


@dataclass(frozen=True)
class ApiError(Exception):
    """An answer other than 2xx: ``HTTP 403 PERMISSION_DENIED: <message>``."""

    status: int
    code: str
    message: str
    what: str = ""

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.what + ': ' if self.what else ''}HTTP {self.status}{code}: {self.message}"

    @property
    def not_found(self) -> bool:
        """The object is not there (404, or the API's RESOURCE_DOES_NOT_EXIST code)."""
        return self.status == 404 or self.code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def api_error(exc: urllib.error.HTTPError, what: str = "") -> ApiError:
    try:
        doc = json.loads(exc.read().decode("utf-8", "replace"))
    except (ValueError, OSError):
        doc = {}
    code = str(doc.get("error_code", "")) if isinstance(doc, dict) else ""
    message = str(doc.get("message", exc.reason)) if isinstance(doc, dict) else str(exc.reason)
    return ApiError(exc.code, code, message, what)


def _request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    what: str,
) -> bytes:
    request = urllib.request.Request(
        url, data=data, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})}
    )
    try:
        # The URL is the environment file's workspace host, GitHub's token service, or a test server.
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        raise api_error(exc, what) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"{what}: cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}") from None


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> bool:
        """Forget the current token; True if a new one can be had (so a 401 is worth retrying)."""
        ...


@dataclass
class StaticToken:
    value: str

    def token(self) -> str:
        return self.value

    def invalidate(self) -> bool:
        return False


class GitHubOidcToken:
    """A Databricks token for ``client_id``, exchanged from this GitHub job's OIDC token and
    exchanged again when half its life has passed or when it is refused."""

    def __init__(
        self,
        *,
        host: str,
        client_id: str,
        audience: str,
        request_url: str,
        request_token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host.rstrip("/")
        self.client_id = client_id
        self.audience = audience
        self.request_url = request_url
        self.request_token = request_token
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self.exchanges = 0

    def _github_token(self) -> str:
        separator = "&" if "?" in self.request_url else "?"
        url = f"{self.request_url}{separator}audience={urllib.parse.quote(self.audience, safe='')}"
        body = _request(
            url,
            headers={"Authorization": f"Bearer {self.request_token}", "Accept": "application/json"},
            what="GitHub OIDC token",
        )
        value = _json(body, "GitHub OIDC token").get("value")
        if not isinstance(value, str) or not value:
            raise CommandError("GitHub OIDC token: the answer holds no `value` (is `id-token: write` set?)")
        return value

    def _exchange(self) -> None:
        started = self.clock()
        form = {"client_id": self.client_id, "subject_token": self._github_token(), **TOKEN_EXCHANGE_FORM}
        try:
            body = _request(
                self.host + TOKEN_EXCHANGE_PATH,
                method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                data=urllib.parse.urlencode(form).encode(),
                what=f"token exchange at {self.host}{TOKEN_EXCHANGE_PATH}",
            )
        except ApiError as exc:
            raise CommandError(
                f"{exc} (does a federation policy of service principal {self.client_id} accept this job's "
                f"subject and audience {self.audience!r}? docs/runbooks/ci-cd.md)"
            ) from None
        doc = _json(body, "token exchange")
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise CommandError("token exchange: the answer holds no access_token")
        lifetime = doc.get("expires_in")
        life = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else ASSUMED_LIFETIME
        self._token = token
        self._refresh_at = started + life / 2
        self.exchanges += 1

    def token(self) -> str:
        if self._token is None or self.clock() >= self._refresh_at:
            self._exchange()
        assert self._token is not None
        return self._token

    def invalidate(self) -> bool:
        self._token = None
        return True


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8", "replace") or "{}")
    except ValueError:
        raise CommandError(f"{what}: the answer is not JSON: {body[:200]!r}") from None
    if not isinstance(doc, dict):
        raise CommandError(f"{what}: unexpected answer {body[:200]!r}")
    return doc


def token_source(host: str, audience: str, environ: Mapping[str, str] | None = None) -> TokenSource:
    """The credentials of this process for ``host`` (module docstring); UsageError when there are none."""
    env = os.environ if environ is None else environ
    if env.get("DATABRICKS_AUTH_TYPE", "") == "github-oidc":
        missing = [
            name
            for name in (
                "DATABRICKS_CLIENT_ID",
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            )
            if not env.get(name, "").strip()
        ]
        if missing:
            raise UsageError(
                f"DATABRICKS_AUTH_TYPE=github-oidc, but {', '.join(missing)} not set (the job needs "
                "`permissions: id-token: write` and the Environment variable of the client id)"
            )
        return GitHubOidcToken(
            host=host,
            client_id=env["DATABRICKS_CLIENT_ID"].strip(),
            audience=audience,
            request_url=env["ACTIONS_ID_TOKEN_REQUEST_URL"],
            request_token=env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
        )
    token = env.get("DATABRICKS_TOKEN", "").strip()
    if token:
        return StaticToken(token)
    raise UsageError(
        f"no Databricks credentials for {host}: set DATABRICKS_TOKEN (a personal access token, or "
        f"`databricks auth token --host {host}`), or, in GitHub Actions, DATABRICKS_AUTH_TYPE=github-oidc "
        "and DATABRICKS_CLIENT_ID (docs/runbooks/ci-cd.md)"
    )


class Workspace:
    """GET/POST against one workspace; a 401 gets one more try with a new token when the token
    source can make one."""

    def __init__(self, base_url: str, tokens: TokenSource) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.refused = 0  # 401 answers seen (and retried when possible)

    def _send(self, method: str, path: str, body: Any, query: Mapping[str, Any] | None, what: str) -> bytes:
        url = self.base_url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {self.tokens.token()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            try:
                return _request(url, method=method, headers=headers, data=data, what=what)
            except ApiError as exc:
                if exc.status != 401:
                    raise
                self.refused += 1
                if attempt == 2 or not self.tokens.invalidate():
                    raise
        raise AssertionError("unreachable")

    def call(
        self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        what = f"{method} {path}"
        return _json(self._send(method, path, body, query, what), what)

    def download(self, path: str) -> bytes:
        """A workspace file's bytes (``/api/2.0/workspace/export`` with ``direct_download``, as the
        CLI's filer reads a bundle's state: databricks-sdk-go ``WorkspaceAPI.Download``)."""
        return self._send(
            "GET",
            "/api/2.0/workspace/export",
            None,
            {"path": path, "direct_download": "true"},
            f"export {path}",
        )

    def list_dir(self, path: str) -> list[dict[str, Any]]:
        """``/api/2.0/workspace/list``: the objects in ``path`` (ApiError.not_found when it is not there)."""
        objects = self.call("GET", "/api/2.0/workspace/list", query={"path": path}).get("objects") or []
        return [o for o in objects if isinstance(o, dict)]

    def status(self, path: str) -> dict[str, Any] | None:
        """``/api/2.0/workspace/get-status``, or None when nothing is at ``path``."""
        try:
            return self.call("GET", "/api/2.0/workspace/get-status", query={"path": path})
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
