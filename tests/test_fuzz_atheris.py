"""A short, bounded coverage-guided run of libFuzzer (atheris) over the MIME parser, seeded with the corpus
of broken mail; a crash (an exception other than ``MailParseError``) fails the test with libFuzzer's report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RUNS = int(os.environ.get("CRM_INBOX_FUZZ_RUNS", "1000"))  # about 10 s; more by hand


def test_atheris_finds_no_crash_in_the_mime_parser(tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("atheris is not installed (pip install -e '.[test]')")
        pytest.skip("atheris is not installed")
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds to the first corpus folder: a copy, not tests/
    corpus.mkdir()
    for seed in [*(HERE / "mail-broken").glob("*.eml"), *sorted((HERE / "mail").glob("*.eml"))[:30]]:
        shutil.copy(seed, corpus / seed.name)
    result = subprocess.run(
        [sys.executable, str(HERE / "fuzz" / "mime_atheris.py"), f"-runs={RUNS}", "-max_total_time=90",
         "-max_len=20000", "-timeout=20", "-rss_limit_mb=1024", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=300, cwd=HERE.parent)
    report = result.stdout[-3000:] + result.stderr[-6000:]
    assert result.returncode == 0, report
    assert "Done" in result.stderr, report  # it really ran (libFuzzer ends with "Done N runs")
