"""A throw-away Dovecot IMAP server for the tests (and bench/imap.py), plus a TCP proxy that can cut or
freeze the connection between the CRM and the server.

Dovecot runs from Debian's ``dovecot-imapd`` (``/usr/sbin/dovecot``) with a configuration of its own in a
temporary folder: listening on 127.0.0.1 on a free port, plain-text passwords from a passwd-file, Maildir
under the folder, its sockets, state and log there too. A system Dovecot (port 143) is neither used nor
disturbed.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"dovecot did not answer on port {port} within {timeout} s")
        time.sleep(0.05)


def dovecot_available() -> bool:
    return os.access(DOVECOT, os.X_OK)


class Dovecot:
    """One private Dovecot instance. ``start()``/``stop()``/``restart()`` keep the port and the mail."""

    def __init__(self, root: Path | None = None, *, tls_cert: tuple[Path, Path] | None = None,
                 extra_config: str = "") -> None:
        # Short path: Dovecot's unix sockets live under base_dir (108 bytes at most).
        self.root = Path(tempfile.mkdtemp(prefix="crm-dovecot-")) if root is None else root
        self.root.chmod(0o755)  # the mail processes run as an unprivileged user and must get in
        self.port = free_port()
        self.tls_port = free_port() if tls_cert else 0
        self.tls_cert = tls_cert
        self.extra_config = extra_config
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        if os.getuid() == 0:  # Dovecot gives no mail access as root: the mail belongs to nobody
            self.uid, self.gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
            self.system_user = "nobody"
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            self.system_user = pwd.getpwuid(self.uid).pw_name
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "home", self.uid, self.gid)
        self._write_config()

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def _write_config(self) -> None:
        root = self.root
        tls = "no"
        tls_listener = "inet_listener imaps {\n    port = 0\n  }"
        if self.tls_cert:
            cert, key = self.tls_cert
            tls = f"yes\nssl_cert = <{cert}\nssl_key = <{key}"
            tls_listener = f"inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.tls_port}\n  }}"
        (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = crm-test-{self.port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {tls}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {self.system_user}
default_internal_group = {grp.getgrgid(self.gid).gr_name}
default_login_user = {self.system_user}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  {tls_listener}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
{self.extra_config}
""")

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password
        home = self.root / "home" / name
        home.mkdir(exist_ok=True)
        os.chown(home, self.uid, self.gid)
        lines = [f"{u}:{{PLAIN}}{p}:{self.uid}:{self.gid}::{self.root}/home/{u}::\n" for u, p in self.users.items()]
        path = self.root / "users"
        path.write_text("".join(lines))
        path.chmod(0o644)

    def start(self) -> None:
        # A process group of its own, so that ``stop`` can end the master and all its children at once.
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=(self.root / "stderr.log").open("ab"))
        try:
            wait_for_port(self.port)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None

    def stop(self) -> None:
        if self.proc is None:
            return
        # To the whole group: the master alone leaves its imap processes serving their connections (IDLE
        # included) until they notice it is gone, seconds later; a server that stops ends them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        # The port is free again once nothing listens (Dovecot's children may take a moment).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.log_path, self.root / "stderr.log"):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def client(self, user: str, *, port: int | None = None):  # type: ignore[no-untyped-def]
        """A logged-in IMAPClient (the test's own view of the mailbox, e.g. to APPEND)."""
        from imapclient import IMAPClient

        conn = IMAPClient("127.0.0.1", port=port or self.port, ssl=False, timeout=30)
        conn.login(user, self.users[user])
        return conn

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) made with openssl, valid for a day."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o644)  # read by Dovecot's config parser (root) only, but harmless in a throw-away folder
    return cert, key


class Proxy:
    """A TCP proxy between the CRM and Dovecot that can cut the open connections (the client sees EOF) or
    freeze them (bytes stop flowing, nothing is closed: a dead network path). New connections work."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._frozen: set[socket.socket] = set()
        self.connections = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="imap-test-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while src in self._frozen:  # deliver nothing, close nothing: the path is dead
                    time.sleep(0.05)
                    if self._closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        """From now on the open connections carry nothing (new ones do)."""
        with self._lock:
            self._frozen.update(s for pair in self._pairs for s in pair)

    def cut(self) -> None:
        """Close every open connection (the client sees the server go away)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()
