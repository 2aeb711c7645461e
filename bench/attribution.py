"""Precision and recall of contact attribution over the sample corpus in tests/mail/.

Each sample runs through the real intake and pipeline on a fresh SQLite database holding the corpus'
world. A linked contact that the sample does not name is a false positive (the costly error: mail on
the wrong customer's timeline); a named contact that was not linked is a false negative.

    .venv/bin/python bench/attribution.py [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_inbox.config import Settings, replace  # noqa: E402
from crm_inbox.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from tests.mail_world import load_world, parties_match, run_sample, sample_names, world_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="print every sample's outcome")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    tp = fp = fn = 0
    wrong: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        template_engine = make_engine(f"sqlite:///{template}")
        upgrade(template_engine)
        template_engine.dispose()  # checkpoint the WAL into the file before it is copied
        for name in sample_names():
            db = Path(tmp) / f"{name}.db"
            db.write_bytes(template.read_bytes())
            engine = make_engine(f"sqlite:///{db}")
            factory = make_sessionmaker(engine)
            settings = world_settings(replace(Settings(), database={"url": f"sqlite:///{db}"}))
            load_world(factory)
            expected, got = run_sample(factory, settings, name)
            s_tp, s_fp, s_fn = parties_match(expected["parties"], got.parties)
            tp, fp, fn = tp + s_tp, fp + s_fp, fn + s_fn
            if s_fp or s_fn:
                wrong.append(f"{name}: expected {expected['parties']}, linked {got.parties} ({got.reason})")
            if args.verbose:
                print(f"{name:42} tp={s_tp} fp={s_fp} fn={s_fn}  {got.reason}")
            engine.dispose()
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"samples: {len(sample_names())}  parties expected: {tp + fn}  linked: {tp + fp}")
    print(f"precision: {precision:.1%}  (false positives: {fp})")
    print(f"recall:    {recall:.1%}  (false negatives: {fn})")
    for line in wrong:
        print("  " + line)
    return 0 if fp == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
