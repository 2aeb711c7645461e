"""MAIL FROM and RCPT TO paths read without aiosmtpd's header parser when they are plain (handlers/smtp.py):
the same address and the same parameters as aiosmtpd reads, for every way a client may write them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from handlers.smtp import CrmSMTP, plain_path

ARGS = [
    "<anna.berg@kunde.example>", "<anna.berg@kunde.example> SIZE=3012 BODY=8BITMIME",
    "<Anna.Berg@Kunde.Example>  SIZE=1", "<a@b>", "<a@b> ", "<a@b>\t", "<o'hara+crm@mail-1.kunde.example>",
    "<a@b.de> (comment) SIZE=1", "<a@b.de>(comment)", " <a@b.de>", "<>", "<> SIZE=10", "a@b.de",
    "a@b.de SIZE=1", '<"anna berg"@kunde.example>', "<anna@[192.0.2.1]>", "<@relay.example:anna@kunde.example>",
    "<anna..berg@kunde.example>", "<.anna@kunde.example>", "<anna.@kunde.example>", "<anna@kunde.example.>",
    "<anna@kunde..example>", "<anna@kunde_x.example>", "<jürgen@kunde.example>", "<anna@kunde.example",
    "<anna@kunde.example>>", "<anna@kunde.example> <b@c.de>", "<" + "x" * 70 + "@kunde.example>",
    "<" + "x" * 64 + "@kunde.example>", "<anna@kunde.example>SIZE=1",
]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SMTP, CrmSMTP]]:
    loop = asyncio.new_event_loop()
    try:
        yield SMTP(object(), loop=loop), CrmSMTP(object(), loop=loop)
    finally:
        loop.close()


@pytest.mark.parametrize("arg", ARGS)
def test_a_path_reads_as_aiosmtpd_reads_it(servers: tuple[SMTP, CrmSMTP], arg: str) -> None:
    stock, ours = servers
    assert ours._getaddr(arg) == stock._getaddr(arg)


def test_plain_paths_skip_the_header_parser() -> None:
    assert plain_path("<anna.berg@kunde.example> SIZE=3012") == ("anna.berg@kunde.example", "SIZE=3012")
    assert plain_path("<o'hara+crm@mail-1.kunde.example>") == ("o'hara+crm@mail-1.kunde.example", "")
    for arg in ("<>", '<"a b"@c.de>', "<a@[192.0.2.1]>", "<jürgen@kunde.example>", "<a@b.de> (x)", "a@b.de"):
        assert plain_path(arg) is None, arg
