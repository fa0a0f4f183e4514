"""Headless Chromium opening a page the way a user's browser does. All its traffic goes to the
instance's nginx, used as the browser's HTTP proxy: requests carry the public host name in the
Host header and the Origin, as they would through the load balancer, and no name is resolved."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No name resolves (the proxy is an address): nothing can bypass nginx.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1400,900",
    "--virtual-time-budget=25000",
)
TIMEOUT = 120


def _run(proxy_port: int, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="rehearsal-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{proxy_port}",
             *extra, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )  # fmt: skip


def dump_dom(proxy_port: int, url: str) -> str:
    return _run(proxy_port, url, "--dump-dom").stdout


def screenshot(proxy_port: int, url: str, path: Path) -> bool:
    _run(proxy_port, url, f"--screenshot={path}")
    return path.exists()
