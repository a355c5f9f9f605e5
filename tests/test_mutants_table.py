"""The mutation table (`tests/mutants.py`) stays true to the code: every planted bug's snippet
still occurs exactly once in its file, so a hand run checks every mutant, and a stale entry is
reported by name rather than stopping the run."""

from __future__ import annotations

import sys

import pytest

from tests import mutants


def test_every_mutant_still_matches_the_code():
    stale = {m[0]: why for m in mutants.MUTANTS if (why := mutants.stale(m)) is not None}
    assert not stale, f"stale entries in tests/mutants.py (update their snippets): {stale}"


def test_every_mutant_names_test_files_that_exist_and_changes_its_snippet():
    for kind, _file, original, mutated, tests in mutants.MUTANTS:
        assert original != mutated, kind
        assert tests and all((mutants.ROOT / t).exists() for t in tests), kind


def test_mutant_kinds_are_unique():
    kinds = [m[0] for m in mutants.MUTANTS]
    assert len(kinds) == len(set(kinds)), sorted(k for k in kinds if kinds.count(k) > 1)


def test_a_stale_mutant_is_reported_by_name_not_fatal(monkeypatch, capsys):
    good = mutants.MUTANTS[0]
    gone = ("a snippet the code no longer has", good[1], "no such line in this file", "x", good[4])
    assert mutants.stale(good) is None
    assert "occurs 0 times" in mutants.stale(gone)
    monkeypatch.setattr(mutants, "MUTANTS", [gone, good])
    monkeypatch.setattr(sys, "argv", ["mutants.py", "--check"])
    with pytest.raises(SystemExit) as exit_:
        mutants.main()
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "STALE: 'a snippet the code no longer has'" in err and "1 of 2 mutants match the code" in out


def test_a_run_skips_stale_mutants_and_still_runs_the_others(monkeypatch, capsys):
    good = mutants.MUTANTS[0]
    gone = ("a snippet the code no longer has", good[1], "no such line in this file", "x", good[4])
    ran = []
    monkeypatch.setattr(mutants, "run", lambda m: (ran.append(m[0]) or True, 0.0))
    monkeypatch.setattr(mutants, "MUTANTS", [gone, good])
    monkeypatch.setattr(sys, "argv", ["mutants.py"])
    mutants.main()
    out = capsys.readouterr().out
    assert ran == [good[0]]
    assert "STALE" in out and "1 of 1 caught; 1 stale, not run" in out
