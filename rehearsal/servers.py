"""The servers an instance talks to, all on 127.0.0.1 on free ports: MariaDB with the stack's
parameter group (TLS only), a binary log as RDS keeps one, and RDS IAM authentication (a PAM
service checking the tokens); moto (S3, SSM, Secrets Manager, STS); Redis with TLS and AUTH; and an
egress trap that records any attempt to reach the internet through the proxy variables."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal import procs

START_TIMEOUT = 60.0
PAM_SERVICES = Path("/etc/pam.d")
VERIFIER = Path(__file__).with_name("iam_token.py")
# What RDS gives the master user, on *.* WITH GRANT OPTION (RDS User Guide, "Master user account
# privileges", MySQL 8.0 and MariaDB): no SUPER, which is why MLflow's trigger needs the parameter
# group's log_bin_trust_function_creators when the binary log is on.
RDS_MASTER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, "
    "SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, "
    "REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, "
    "TRIGGER"
)


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
class TokenVerifier:
    """The PAM service through which MariaDB's auth_pam checks RDS IAM tokens (iam_token.py).

    auth_pam opens the PAM service named in the account's ``USING`` clause and libpam reads it
    from /etc/pam.d (MariaDB offers no other directory): the file is written there at start, under a
    name unique to the run, and removed at stop. The rehearsal runs as root, locally and in CI."""

    directory: Path
    region: str
    credentials: dict[str, str]  # access key id -> secret key: what the instances sign with
    service: str = field(default_factory=lambda: f"mlflow-rehearsal-{secrets.token_hex(4)}")

    @property
    def pam_file(self) -> Path:
        return PAM_SERVICES / self.service

    @property
    def log(self) -> Path:
        return self.directory / "decisions.jsonl"

    def install(self, host: str, port: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "verifier.json"
        config.write_text(
            json.dumps(
                {"host": host, "port": port, "region": self.region, "credentials": self.credentials,
                 "log": str(self.log)}
            )
        )  # fmt: skip
        config.chmod(0o600)
        # expose_authtok: the token on the verifier's stdin; account: auth_pam also asks for it.
        self.pam_file.write_text(
            f"auth required pam_exec.so expose_authtok quiet {sys.executable} -I {VERIFIER} {config}\n"
            "account required pam_permit.so\n"
        )

    def remove(self) -> None:
        self.pam_file.unlink(missing_ok=True)

    def decisions(self) -> list[dict[str, Any]]:
        """Every token the verifier was shown so far, in order (iam_token.main's log lines)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@dataclass
class MariaDB:
    directory: Path
    tls: Tls
    verifier: TokenVerifier
    parameters: dict[str, str]  # the stack's DB parameter group
    binary_log: bool  # RDS keeps one when automated backups are on
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    @property
    def general_log(self) -> Path:
        return self.directory / "general.log"

    def start(self) -> None:
        data = self.directory / "data"
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        _run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
              "--auth-root-authentication-method=socket", "--skip-test-db"])  # fmt: skip
        self.verifier.install("127.0.0.1", self.port)
        binlog = [f"--log-bin={data / 'binlog'}", "--server-id=1"] if self.binary_log else []
        self.proc = procs.start(
            [binary, "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
             f"--pid-file={self.directory / 'mysqld.pid'}", f"--ssl-ca={self.tls.ca}",
             f"--ssl-cert={self.tls.cert}", f"--ssl-key={self.tls.key}", "--max-connections=500",
             *(f"--{name}={value}" for name, value in self.parameters.items()), *binlog,
             # RDS IAM authentication: the server asks for mysql_clear_password, as RDS does.
             "--plugin-load-add=auth_pam", "--pam-use-cleartext-plugin=ON",
             # Every statement, for the proof that MLflow uses each privilege it is granted.
             "--general-log=ON", f"--general-log-file={self.general_log}", "--log-output=FILE"],
            self.directory / "mariadb.log",
        )  # fmt: skip
        procs.wait_until("mariadb", self._ping, START_TIMEOUT)

    def _ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.directory / "mariadb.log").read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"mariadbd exited {self.proc.returncode}: " + " / ".join(tail))
        try:
            self.sql("SELECT 1")
            return True
        except subprocess.CalledProcessError:
            return False

    def settings(self, *names: str) -> dict[str, str]:
        """Server variables as the server reports them."""
        values = self.sql("SELECT " + ", ".join(f"@@{n}" for n in names)).strip().split("\t")
        return dict(zip(names, values, strict=True))

    def sql(self, statement: str, database: str = "") -> str:
        """Run SQL as root over the unix socket (allowed without TLS); tab-separated rows."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement]
        return _run([*argv, database] if database else argv).stdout

    def create_master(self, user: str, password: str) -> None:
        """The master user as RDS creates it (a password; the privileges RDS gives it)."""
        self.sql(
            f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; "
            f"GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO '{user}'@'%' WITH GRANT OPTION"
        )

    def create_database(self, name: str) -> None:
        self.sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")

    def dump(self, databases: list[str], path: Path) -> int:
        """A consistent logical copy of ``databases`` (the rehearsal's stand-in for an RDS
        snapshot of them); its size in bytes."""
        with path.open("wb") as out:
            subprocess.run(
                ["mariadb-dump", "--no-defaults", f"--socket={self.socket}", "-uroot", "--single-transaction",
                 "--routines", "--triggers", "--databases", *databases],
                stdout=out, check=True, timeout=600,
            )  # fmt: skip
        return path.stat().st_size

    def restore(self, databases: list[str], path: Path) -> None:
        """The databases as ``dump`` copied them (dropped first: what a restored snapshot holds)."""
        self.sql("; ".join(f"DROP DATABASE IF EXISTS `{d}`" for d in databases))
        with path.open("rb") as dump:
            subprocess.run(
                ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot"],
                stdin=dump, check=True, timeout=600, capture_output=True,
            )  # fmt: skip

    def kill_connections(self, user: str) -> int:
        """End every session of ``user`` from the server side (as a failover or a restart would)."""
        count = int(self.sql(f"SELECT COUNT(*) FROM information_schema.processlist WHERE user = '{user}'"))
        self.sql(f"KILL CONNECTION USER '{user}'")  # MariaDB's form: every session at once
        return count

    def session_ports(self, user: str) -> list[int]:
        """The client-side TCP ports of ``user``'s open sessions."""
        hosts = self.sql(f"SELECT host FROM information_schema.processlist WHERE user = '{user}'").split()
        return [int(host.rsplit(":", 1)[1]) for host in hosts]

    def sessions(self) -> dict[str, int]:
        """Open sessions per user."""
        rows = self.sql("SELECT user, COUNT(*) FROM information_schema.processlist GROUP BY user")
        return {user: int(n) for user, n in (line.split("\t") for line in rows.splitlines() if line)}

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
        self.verifier.remove()


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
    """A new replication group: TLS, and no AUTH token until the provisioning function sets one
    (through rehearsal.substitutions.ElastiCacheOverRedis). ``cli`` speaks as the harness, with the
    token of the moment."""

    directory: Path
    tls: Tls
    token: str = ""  # the one the group takes now ("" while it takes none)
    port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = procs.start(
            ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(self.port),
             "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
             "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            self.directory / "redis.log",
        )  # fmt: skip
        procs.wait_until("redis", self._ping, START_TIMEOUT)

    def _ping(self) -> bool:
        try:
            return self.cli("PING").strip() == "PONG"
        except subprocess.CalledProcessError:
            return False

    def cli(self, *command: str, token: str | None = None) -> str:
        secret = self.token if token is None else token
        auth = ["--no-auth-warning", "-a", secret] if secret else []
        return _run(
            ["redis-cli", "--tls", "--cacert", str(self.tls.ca), "-h", "127.0.0.1", "-p", str(self.port),
             *auth, *command]
        ).stdout  # fmt: skip

    def connections_received(self) -> int:
        for line in self.cli("INFO", "stats").splitlines():
            if line.startswith("total_connections_received:"):
                return int(line.split(":")[1])
        raise ValueError("redis INFO stats without total_connections_received")

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


def host_certificate(tls: Tls, directory: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A certificate for ``hosts`` signed by the rehearsal CA (as ACM's for the custom host)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, csr, ext = (directory / n for n in ("host.pem", "host.key", "host.csr", "host.ext"))
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n")
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}",
          "-keyout", str(key), "-out", str(csr)])  # fmt: skip
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(tls.ca), "-CAkey", str(tls.ca.with_name("ca.key")),
          "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)])  # fmt: skip
    return cert, key


@dataclass
class LoadBalancer:
    """The application load balancer's part, by an nginx of its own: HTTPS with the custom host's
    certificate (signed by the rehearsal CA), port 80 redirecting to HTTPS, requests forwarded to the
    instances' nginx round robin with the Host kept and ``X-Forwarded-Proto: https`` (as the ALB
    does). What it cannot show: ACM's validation, the listener's TLS policy, health-check removal."""

    directory: Path
    tls: Tls
    hosts: list[str]
    upstreams: list[int] = field(default_factory=list)
    https_port: int = field(default_factory=procs.free_port)
    http_port: int = field(default_factory=procs.free_port)
    proc: subprocess.Popen[bytes] | None = None

    def _config(self, cert: Path, key: Path) -> str:
        d = self.directory
        servers = "".join(f"        server 127.0.0.1:{port};\n" for port in self.upstreams)
        return f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_max_body_size 0;
    upstream instances {{
{servers}    }}
    server {{
        listen 127.0.0.1:{self.http_port};
        return 301 https://$host$request_uri;
    }}
    server {{
        listen 127.0.0.1:{self.https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://instances;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Port 443;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""

    def start(self, upstreams: list[int]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = host_certificate(self.tls, self.directory / "tls", self.hosts)
        self.upstreams = list(upstreams)
        conf = self.directory / "nginx.conf"
        conf.write_text(self._config(cert, key))
        self.proc = procs.start(["nginx", "-c", str(conf), "-g", "daemon off;"], self.directory / "nginx.log")
        procs.wait_until("load balancer", self._listening, START_TIMEOUT, 0.2)

    def route(self, upstreams: list[int]) -> None:
        """Forward to these instances from now on (nginx reloads its configuration)."""
        self.upstreams = list(upstreams)
        cert, key = self.directory / "tls/host.pem", self.directory / "tls/host.key"
        conf = self.directory / "nginx.conf"
        conf.write_text(self._config(cert, key))
        _run(["nginx", "-c", str(conf), "-s", "reload"])

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.https_port)) == 0

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)


@dataclass
class Imds:
    """The instance metadata service an instance asks for its own id (IMDSv2: a token first): the
    launcher reports a failed start to its auto scaling group with it."""

    instance_id: str = ""
    port: int = field(default_factory=procs.free_port)
    _server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import http.server

        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body: str, status: int = 200) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token" and self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._answer("rehearsal-imds-token")
                else:
                    self._answer("", 400)

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != "rehearsal-imds-token":
                    self._answer("", 401)
                elif self.path == "/latest/meta-data/instance-id":
                    self._answer(imds.instance_id)
                else:
                    self._answer("", 404)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


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
