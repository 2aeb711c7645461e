"""Every sample in tests/mail/ goes through the real intake and pipeline and lands where its .json says."""

from __future__ import annotations

import pytest

from tests.mail_world import load_world, parties_match, run_sample, sample_names, world_settings


@pytest.mark.parametrize("name", sample_names())
def test_sample(name, settings, factory):
    settings = world_settings(settings)
    load_world(factory)
    expected, got = run_sample(factory, settings, name)
    why = f"{name}: {expected['description']} — reason given: {got.reason}"

    assert got.direction == expected["direction"], why
    _tp, fp, fn = parties_match(expected["parties"], got.parties)
    assert (fp, fn) == (0, 0), f"{why}; linked {got.parties}"
    assert got.unassigned == expected["unassigned"], why
    assert sorted(got.new_leads, key=lambda lead: lead["email"]) == sorted(
        expected["new_leads"], key=lambda lead: lead["email"]), why
    assert got.automatic == expected["automatic"], why
    assert got.spoof_suspected == expected["spoof_suspected"], why
    if expected["staff_note_contains"]:
        assert got.staff_note and expected["staff_note_contains"] in got.staff_note, why
    else:
        assert not got.staff_note, why
    if expected["bounce_address"]:
        assert expected["bounce_address"] in got.reason, why
        known = any(expected["bounce_address"] in party for party in got.parties)
        assert (expected["bounce_address"] in got.bouncing) == known, why
    if expected["reason_contains"]:
        assert expected["reason_contains"].lower() in got.reason.lower(), why
    assert got.interactions == 1, why


def test_corpus_is_large_enough():
    assert len(sample_names()) >= 40
