"""The servers an instance talks to, all on 127.0.0.1 on free ports: MariaDB with TLS and
``require_secure_transport``, moto (S3, SSM, Secrets Manager, STS), Redis with TLS and AUTH, and an
egress trap that records any attempt to reach the internet through the proxy variables."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal import procs

START_TIMEOUT = 60.0


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
          "/CN=mlflow rehearsal CA", "-keyout", str(ca_key), "-out", str(ca)])  # fmt: skip
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
          "-keyout", str(key), "-out", str(csr)])  # fmt: skip
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)])  # fmt: skip
    key.chmod(0o644)  # read by mariadbd, which may drop to the mysql user
    return Tls(ca, cert, key)


@dataclass
class MariaDB:
    directory: Path
    tls: Tls
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    def start(self) -> None:
        data = self.directory / "data"
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        _run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
              "--auth-root-authentication-method=socket", "--skip-test-db"])  # fmt: skip
        self.proc = procs.start(
            [binary, "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
             f"--pid-file={self.directory / 'mysqld.pid'}", f"--ssl-ca={self.tls.ca}",
             f"--ssl-cert={self.tls.cert}", f"--ssl-key={self.tls.key}",
             "--require-secure-transport=ON", "--character-set-server=utf8mb4",
             "--max-connections=500"],
            self.directory / "mariadb.log",
        )  # fmt: skip
        procs.wait_until("mariadb", self._ping, START_TIMEOUT)

    def _ping(self) -> bool:
        try:
            self.sql("SELECT 1")
            return True
        except subprocess.CalledProcessError:
            return False

    def sql(self, statement: str, database: str = "") -> str:
        """Run SQL as root over the unix socket (allowed without TLS); tab-separated rows."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement]
        return _run([*argv, database] if database else argv).stdout

    def create_database(self, name: str, user: str, password: str) -> None:
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4; "
            f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'; "
            f"GRANT ALL ON `{name}`.* TO '{user}'@'%'"
        )

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


@dataclass
class Moto:
    directory: Path
    binary: Path
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = procs.start(
            [str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)], self.directory / "moto.log"
        )
        procs.wait_until("moto", lambda: procs.http_ok(f"{self.endpoint}/moto-api/"), START_TIMEOUT)

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


@dataclass
class Redis:
    directory: Path
    tls: Tls
    token: str
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start(
            ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(self.port),
             "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
             "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no",
             "--requirepass", self.token, "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            self.directory / "redis.log",
        )  # fmt: skip
        procs.wait_until("redis", self._ping, START_TIMEOUT)

    def _ping(self) -> bool:
        try:
            return self.cli("PING").strip() == "PONG"
        except subprocess.CalledProcessError:
            return False

    def cli(self, *command: str) -> str:
        return _run(
            ["redis-cli", "--tls", "--cacert", str(self.tls.ca), "-h", "127.0.0.1", "-p", str(self.port),
             "--no-auth-warning", "-a", self.token, *command]
        ).stdout  # fmt: skip

    def connections_received(self) -> int:
        for line in self.cli("INFO", "stats").splitlines():
            if line.startswith("total_connections_received:"):
                return int(line.split(":")[1])
        raise ValueError("redis INFO stats without total_connections_received")

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


@dataclass
class EgressTrap:
    """An HTTP proxy that answers nothing: instances get it as HTTP(S)_PROXY, so any request to a
    host other than 127.0.0.1 is recorded here (first request line) and refused."""

    port: int = field(default_factory=procs.free_port)
    seen: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.5)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(1024).split(b"\r\n", 1)[0].decode(errors="replace")
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    line = "(no request line)"
                self.seen.append(line)

    def stop(self) -> None:
        self._stopped.set()
        if self._sock is not None:
            self._sock.close()
