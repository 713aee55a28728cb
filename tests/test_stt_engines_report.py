"""The speech-recognizer benchmark's typed run (benchmarks/stt_engines_records.py): what ``--json``
saves reads back the same through ``--from-json``, and its report counts WER from those records."""

from __future__ import annotations

import json
from dataclasses import asdict

from benchmarks.common import machine_info
from benchmarks.stt_engines_records import Heard, SttEnginesRun
from benchmarks.stt_engines_report import render_markdown
from benchmarks.stt_set import Clip
from tests.markdown_tables import row


def _run() -> SttEnginesRun:
    clips = [
        Clip("piper-1.0", "tuning", "short", "What do bees make?", 1.4),
        Clip("espeak-en-us", "heldout", "long", "Who wrote Hamlet?", 2.1),
    ]
    heard = [
        Heard("whisper", 0, "What do bees make?", 0, 4, 410.0, -0.2),
        Heard("moonshine", 0, "What do we make?", 1, 4, 120.0, -0.6),
        Heard("whisper", 1, "Who wrote Hamlet?", 0, 3, 380.0, -0.1),
        Heard("moonshine", 1, "Who wrote Hamlet?", 0, 3, 110.0, -0.3),
    ]
    rss = {"whisper": {"imported": 300.0}, "moonshine": None}
    return SttEnginesRun(
        "python -m benchmarks.stt_engines", machine_info(None), 12.0, clips, heard, ["whisper", "moonshine"], rss
    )


def test_a_saved_run_reads_back_as_it_was() -> None:
    run = _run()
    assert SttEnginesRun.from_json(json.loads(json.dumps(asdict(run)))) == run


def test_the_report_counts_wer_per_family_from_the_records() -> None:
    markdown = render_markdown(_run())
    assert row(markdown, "piper-1.0 (tuning)") == ["1", "0.0 %", "25.0 %"]
    assert row(markdown, "**all**") == ["2", "0.0 %", "14.3 %"]
    assert "- Moonshine base-en: failed." in markdown
