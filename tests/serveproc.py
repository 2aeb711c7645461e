"""`crm-inbox serve` as a real subprocess for tests and benchmarks: its config file, free ports, starting it
(waiting for its banner), stopping or killing it, and an aiosmtpd sink that counts the notification mails
it sends. Used by the serve, reminder, crash and outage tests and by bench/crash.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CRM = "crm@beispiel-firma.de"
SUPPORT = "support@beispiel-firma.de"
_BANNER = re.compile(r"CRM Inbox: web http://[^:]+:(\d+)/ · SMTP [^:]+:(\d+|None)")


def free_port() -> int:
    """A port nobody listens on now. For a service that must come back on the same port after a restart
    (as an MTA's relay host does), where port 0 would give a new one each time."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def config_file(directory: Path, name: str, database_url: str, **sections: dict[str, Any]) -> Path:
    """``directory/name.toml`` for one serve process (instance folder ``directory/name``): free ports (0),
    the CRM and support addresses; ``sections`` add or override keys per section."""
    merged: dict[str, dict[str, Any]] = {
        "service": {"instance_dir": str(directory / name)},
        "database": {"url": database_url},
        "web": {"port": 0, "secret_key": "test"},
        "smtp": {"port": 0},
        "mail": {"crm_addresses": [CRM], "support_addresses": [SUPPORT]},
        # No analytics refresh process beside the one under test (tests that want it set refresh_minutes).
        "analytics": {"refresh_minutes": 0},
    }
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    path = directory / f"{name}.toml"
    path.write_text("".join(f"[{section}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
                            for section, values in merged.items()))
    return path


def notifications(sink_port: int, timeout_seconds: int = 1) -> dict[str, Any]:
    """The [notifications] section for mail to a local sink."""
    return {"smtp_host": "127.0.0.1", "smtp_port": sink_port, "timeout_seconds": timeout_seconds,
            "from_address": CRM}


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    log: Path
    web_port: int
    smtp_port: int | None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, and the exit status (the test fails if it takes longer than ``timeout``)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait(60)

    def processes(self) -> list[int]:
        """The serve process and its children (the SMTP intake's writer process)."""
        found = [self.proc.pid]
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def ensure_gone(self) -> None:
        if self.proc.poll() is None:
            self.kill()

    def fired(self) -> int:
        """Reminders this process (all runs logging to this file) said it fired."""
        return sum(int(n) for n in re.findall(r"reminders: (\d+) fired", self.log.read_text(errors="replace")))


def serve(config: Path, log: Path, *, timeout: float = 120, open_files: int | None = None,
          prelude: str | None = None) -> Serve:
    """Start ``crm-inbox serve`` and return once it listens (it prints its banner then). ``open_files``: the
    soft limit of open files it starts with (as a shell or a service manager would give it); ``prelude``:
    Python run in its process before the command line (a fault a test injects)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = ["-m", "crm_inbox"] if prelude is None else ["-c", f"{prelude}\nfrom crm_inbox.cli import main\n"
                                                                  "raise SystemExit(main())"]
    proc = subprocess.Popen([sys.executable, *command, "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=None if open_files is None else lambda: _limit_open_files(open_files))
    # The log is copied into the file by a thread of ours: an unread pipe would fill up and block the server
    # mid-write, and a file written by the server itself would fail with it when its file size limit is cut.
    threading.Thread(target=_copy_log, args=(proc.stderr, log), name="serve-log", daemon=True).start()
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout)
    banner = proc.stdout.readline() if ready else ""
    match = _BANNER.search(banner)
    if match is None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(60)
        raise AssertionError(f"serve did not start within {timeout} s: {banner!r}\n{log.read_text()[-4000:]}")
    smtp_port = None if match.group(2) == "None" else int(match.group(2))
    return Serve(proc, log, int(match.group(1)), smtp_port)


def _limit_open_files(soft: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def _copy_log(stream: Any, log: Path) -> None:
    with log.open("a") as out:
        for line in stream:
            out.write(line)
            out.flush()


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@dataclass
class CountingSink:
    """An aiosmtpd handler that counts notification mails per reminder. With ``hold_first`` the first
    message is held at DATA (the sender waits for its reply) until ``release`` is set, then refused."""

    hold_first: bool = False
    received: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: bool = False
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_first and not self.arrived.is_set():
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
            return "451 4.3.0 the sender died meanwhile; this one is not delivered"
        header = re.search(rb"X-CRM-Inbox-Reminder: (\d+)", envelope.original_content)
        with self.changed:
            self.received.append(header.group(1).decode() if header else "?")
            self.changed.notify_all()
        return "250 2.0.0 Ok"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.received) >= count, timeout)


def counting_sink() -> Iterator[tuple[CountingSink, int]]:
    """A running sink and its port (the body of a pytest fixture)."""
    from handlers.smtp import SmtpServer

    handler = CountingSink()
    server = SmtpServer(handler, "127.0.0.1", 0, max_message_bytes=1_000_000)  # type: ignore[arg-type]
    port = server.start()
    yield handler, port
    handler.release.set()
    server.stop()
