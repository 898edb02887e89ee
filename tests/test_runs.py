"""helpers.runs: cached results, labelled with how they were made."""

from __future__ import annotations

import json

from helpers import runs


def test_cached_runs_once_then_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNCOURSE_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"accuracy": [0.5, 0.6]}

    first = runs.cached("demo", {"epochs": 2}, compute)
    second = runs.cached("demo", {"epochs": 2}, compute)
    assert first == second == {"accuracy": [0.5, 0.6]} and len(calls) == 1
    assert "loaded demo" in capsys.readouterr().out
    runs.cached("demo", {"epochs": 3}, compute)  # other parameters: a new run
    assert len(calls) == 2
    files = list((tmp_path / "results").glob("demo-*.json"))
    assert len(files) == 2
    stored = json.loads(files[0].read_text())
    assert {"mode", "device", "torch", "date"} <= set(stored["provenance"])


def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BNCOURSE_CACHE", str(tmp_path))
    runs.cached("demo", {}, lambda: {"x": 1})
    path = next((tmp_path / "results").glob("demo-*.json"))
    path.write_text("{not json")
    assert runs.cached("demo", {}, lambda: {"x": 2}) == {"x": 2}
    assert "unreadable" in capsys.readouterr().out
    assert json.loads(path.read_text())["results"] == {"x": 2}


def test_missing_reference_is_reported_not_raised(capsys):
    assert runs.reference("no-such-experiment") is None
    assert "no reference results" in capsys.readouterr().out


def test_save_keeps_combined_results_with_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("BNCOURSE_CACHE", str(tmp_path))
    path = runs.save("combined", {"main": {"bn": [1, 2]}}, {"epochs": 3})
    stored = json.loads(path.read_text())
    assert stored["name"] == "combined" and stored["results"] == {
        "main": {"bn": [1, 2]}
    }
    assert stored["params"] == {"epochs": 3} and "torch" in stored["provenance"]


def test_a_lesson_says_how_long_it_will_take_before_it_starts(monkeypatch):
    """Lesson 05 prints its expected time from the shipped timings record."""
    from helpers import timing

    monkeypatch.setenv("BNCOURSE_FAST", "1")
    monkeypatch.setattr(timing, "calibration_seconds", lambda: 0.1)
    record = {
        "lessons": {"05_demo": {"fast": 40.0}},
        "provenance": {"calibration_seconds": 0.05, "machine": "m", "date": "d"},
    }
    monkeypatch.setattr(timing, "reference_timings", lambda: record)
    said = timing.lesson_expectation("05_demo")
    assert "fast mode" in said and "40.0 s on the reference machine" in said, said
    assert "about 80.0 s here" in said, said  # this machine: half as fast
    assert "no reference timing" in timing.lesson_expectation("99_missing")


def test_a_lesson_re_timed_on_another_machine_is_scaled_by_its_own_calibration(
    monkeypatch,
):
    """One record holds lessons timed on different machines and days: each
    lesson's (and its cells') estimate uses the run that timed it."""
    from helpers import timing

    monkeypatch.setenv("BNCOURSE_FAST", "1")
    monkeypatch.setattr(timing, "calibration_seconds", lambda: 0.1)
    record = {
        "lessons": {"05_demo": {"fast": 40.0}, "07_demo": {"fast": 40.0}},
        "cells": {"07_cell": {"fast": 10.0}},
        "measured": {
            "07_demo": {
                "fast": {"calibration_seconds": 0.2, "machine": "n", "date": "e"}
            }
        },
        "provenance": {"calibration_seconds": 0.05, "machine": "m", "date": "d"},
    }
    monkeypatch.setattr(timing, "reference_timings", lambda: record)
    assert "about 80.0 s here" in timing.lesson_expectation("05_demo")
    re_timed = timing.lesson_expectation("07_demo")
    assert "about 20.0 s here" in re_timed and "(n, e)" in re_timed, re_timed
    assert "about 5.0 s here" in timing.expectation("07_cell")
