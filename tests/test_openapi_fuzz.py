"""schemathesis against the served OpenAPI document, in process (the Flask app over WSGI), with a real admin
token and some data to find: no generated request to any operation may answer 5xx. Bounded: the ``ci``
hypothesis profile's budget per operation (``HYPOTHESIS_PROFILE=long`` for a longer hunt)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from crm_inbox.analytics.store import build_store
from crm_inbox.intake.store import Envelope, store
from crm_inbox.pipeline.runner import process
from tests.conftest import SUPPORT, make_settings
from tests.mailfactory import make_mail
from web.api.openapi import DOCUMENT

CTI = {"token": "cti-secret", "sipgate_token": "sg-secret", "placetel_token": "pt-secret",
       "twilio_token": "tw-secret", "threecx_token": "3cx-secret"}


@pytest.fixture
def settings(database_url, tmp_path):  # type: ignore[no-untyped-def]
    return make_settings(database_url, tmp_path / "instance", cti=CTI)


@pytest.fixture(scope="module", autouse=True)
def _one_constants_pool() -> Iterator[None]:
    """Schemathesis seeds its requests with literals it reads from the app's source code, parsed again for each
    test's app (0.23 s per operation, a quarter of the file's time). Every test's app runs the same source, so
    the pool built for the first serves them all: the same requests are generated."""
    from schemathesis.python._constants import orchestrator

    build = orchestrator.build_constants_pool
    pools: list[Any] = []

    def build_once(schema: Any) -> Any:
        if not pools:
            pools.append(build(schema))
        return pools[0]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(orchestrator, "build_constants_pool", build_once)
        yield


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (empty) analytics store, built once and copied for each test: without one the reports answer 503
    "missing" to every valid request."""
    path = tmp_path_factory.mktemp("store") / "analytics.duckdb"
    build_store(path, {})
    return path


@pytest.fixture
def api_schema(app: Any, client: Any, auth: dict[str, str], factory: Any, settings: Any, empty_store: Path) -> Any:
    """The document as the app serves it, and a little data so generated ids sometimes exist."""
    company = client.post("/api/v1/companies", json={"name": "Müller Maschinenbau", "domains": ["mueller.de"]},
                          headers=auth).json
    client.post("/api/v1/contacts", json={"name": "Klaus Müller", "emails": ["klaus@mueller.de"],
                                          "phones": ["+49 171 2345678"], "company_id": company["id"]}, headers=auth)
    client.post("/api/v1/contacts", json={"name": "Eva Wagner", "emails": ["eva@wagner.de"]}, headers=auth)
    raw = make_mail(sender="Klaus Müller <klaus@mueller.de>", to=SUPPORT, subject="Angebot",
                    attachments=[("angebot.pdf", "application/pdf", b"%PDF-1.4")])
    process(factory, settings, store(factory, raw, Envelope(mail_from="klaus@mueller.de", rcpt_to=(SUPPORT,),
                                                            peer="203.0.113.1")).inbound_id)
    client.post("/api/v1/reminders", json={"title": "Anrufen", "due": "tomorrow 9:00", "contact_id": 1},
                headers=auth)
    store_path = settings.analytics.store_path(settings.service.instance_dir)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(empty_store, store_path)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


# One test per operation, listed from the document itself (schemathesis' own pytest loader does not work with
# pytest 9 yet, so the operations are driven with hypothesis directly).
OPERATIONS = [(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item
              if method in {"get", "post", "put", "patch", "delete"}]


# The right token for each webhook path, so generated payloads get past the token check as well.
TOKEN_FOR = {"/cti/": "cti-secret", "/sipgate/": "sg-secret", "/placetel/": "pt-secret", "/twilio/": "tw-secret",
             "/3cx/": "3cx-secret"}


def strategies(operation: Any, path: str) -> Any:
    """Valid and invalid requests; with the right webhook token, and with an id that exists (1)."""
    fixed: dict[str, Any] = {}
    if "{token}" in path:
        fixed["token"] = next(t for prefix, t in TOKEN_FOR.items() if path.startswith(prefix))
    if "{id}" in path:
        fixed["id"] = 1
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    options = [operation.as_strategy(mode) for mode in modes]
    if fixed:
        options += [operation.as_strategy(mode, path_parameters=fixed) for mode in modes]
    return st.one_of(options)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_generated_request_gets_a_server_error(api_schema: Any, auth: dict[str, str], method: str,
                                                  path: str) -> None:
    # 25 requests per operation under the ``ci`` profile (3,200 per database for the ~130 operations)
    @fuzz_settings(max_examples=max(10, fuzz_settings.default.max_examples // 6))
    @given(case=strategies(api_schema[path][method], path))
    def call(case: Any) -> None:
        case.call_and_validate(headers=auth, checks=[not_a_server_error])

    call()
