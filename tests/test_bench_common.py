"""The helpers the benchmarks share (benchmarks.common, benchmarks.report): summaries and their
cells, options, the command line with the key hidden, the machine and its Markdown lines, tables,
publishing a report, and clean unwinding on SIGTERM."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import psutil
import pytest

from benchmarks.common import (
    INTERRUPTED_EXIT,
    STRATEGY_COLOURS,
    STRATEGY_LABELS,
    STRATEGY_ORDER,
    MachineInfo,
    Summary,
    Table,
    command_line,
    cpu_flags,
    format_cell,
    format_improvement,
    hide_api_key,
    machine_info,
    parse_rtt_list,
    ratio_of,
    run_interruptible,
)
from benchmarks.report import image
from tests.markdown_tables import row


def test_summary_ignores_missing_values() -> None:
    assert Summary.of([3.0, None, 1.0, 2.0]) == Summary(3, 2.0, 1.0, 3.0)
    assert Summary.of([None]) == Summary(0, None, None, None)


def test_cell_is_median_with_range() -> None:
    assert format_cell(Summary.of([100.0, 120.0, 300.0])) == "120 ms (100–300)"
    assert format_cell(Summary.of([42.4])) == "42 ms"
    assert format_cell(Summary.of([5.0, 5.0])) == "5 ms"  # no range to show
    assert format_cell(Summary.of([1.25, 2.5]), " chars", digits=1) == "1.9 chars (1.2–2.5)"
    assert format_cell(Summary.of([])) == "—"


def test_improvement_reads_like_the_original_table() -> None:
    assert format_improvement(Summary.of([620.0]), Summary.of([180.0])) == "3.4× faster / −440 ms"
    assert format_improvement(Summary.of([100.0]), Summary.of([125.0])) == "1.2× slower / +25 ms"
    assert format_improvement(Summary.of([6.0]), Summary.of([1.0]), count=True) == "6.0× fewer / −5"
    assert format_improvement(Summary.of([5.0]), Summary.of([0.0])) == "−5 ms"  # no ratio against zero
    assert format_improvement(Summary.of([]), Summary.of([1.0])) == "—"
    assert ratio_of(None, 1.0) is None and ratio_of(3.0, 1.5) == 2.0


def test_strategies_have_one_label_and_colour_each() -> None:
    assert set(STRATEGY_LABELS) == set(STRATEGY_COLOURS) == set(STRATEGY_ORDER) == {"cold", "pooled", "prewarmed"}


def test_rtt_list_parses_and_refuses() -> None:
    assert parse_rtt_list("0, 50,150") == (0.0, 50.0, 150.0)
    for bad in ("", "x", "10,-5", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rtt_list(bad)


def test_command_line_quotes_and_hides_the_key() -> None:
    argv = ["--api-key", "sk-1", "--api-key=sk-2", "--json", "a b.json"]
    assert hide_api_key(argv) == ["--api-key", "<hidden>", "--api-key=<hidden>", "--json", "a b.json"]
    shown = command_line("python -m some.bench", argv)
    assert shown == "python -m some.bench --api-key '<hidden>' '--api-key=<hidden>' --json 'a b.json'"
    assert "sk-" not in shown
    assert command_line("python -m some.bench", []) == "python -m some.bench"


def test_machine_info_has_ram_and_only_installed_versions() -> None:
    info = machine_info(0.5, packages=("aiohttp", "no-such-package-warmvoice"))
    assert info.ram_bytes == psutil.virtual_memory().total > 0
    assert set(info.versions) == {"aiohttp"}
    assert info.cpu_count >= 1 and info.cpu_model and info.load_start == 0.5


def test_sigterm_unwinds_the_body_and_returns_130() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    events: list[str] = []

    def body() -> int:
        try:
            signal.raise_signal(signal.SIGTERM)
            events.append("kept running")
            return 0
        finally:
            events.append("cleaned up")

    assert run_interruptible(body, events.append) == INTERRUPTED_EXIT
    assert events == ["cleaned up", "interrupted"]
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    assert run_interruptible(lambda: 3, events.append) == 3


def test_cpu_flags_reads_the_probed_ones_from_cpuinfo(tmp_path: Path) -> None:
    from benchmarks.machine_probe import cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 fma avx512f avx512bw\n")
    assert cpu_flags(cpuinfo) == ("avx2", "avx512f")
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx_vnni\n")
    assert cpu_flags(cpuinfo) == ("avx2", "avx_vnni")
    assert cpu_flags(tmp_path / "missing") == ()


def test_probe_line_names_every_flag_and_the_workload() -> None:
    from benchmarks.machine_probe import MachineProbe

    line = MachineProbe(("avx2",), 480.4, 130.2, 310.0, 20, 3).describe()
    assert "AVX2 yes" in line and "AVX-512 no" in line and "AVX-512 VNNI no" in line
    assert "Whisper tiny.en on a fixed 3 s clip 480 ms" in line and "Piper on a fixed sentence 130 ms" in line
    assert "20 tokens from the embedded model 310 ms" in line
    assert "embedded model unavailable" in MachineProbe((), 1, 1, None, 0, 3).describe()


def _machine(probe: object = None) -> MachineInfo:
    from benchmarks.machine_probe import MachineProbe

    assert probe is None or isinstance(probe, MachineProbe)
    return MachineInfo(
        cpu_model="Some CPU",
        cpu_count=2,
        python="3.11.7",
        platform="Linux 6.1",
        date="2026-12-07T18:00:00+00:00",
        versions={"aiohttp": "3.11.0"},
        load_start=0.25,
        load_end=None,
        ram_bytes=16 * 2**30,
        probe=probe,
        flags=("avx2",),
    )


def test_one_machine_line_and_one_probe_line_for_every_report() -> None:
    from benchmarks.machine_probe import MachineProbe

    lines = _machine(MachineProbe(("avx2",), 250.4, 160.0, 150.0, 20, 3)).markdown().splitlines()
    assert lines[0] == (
        "- Machine: Some CPU, 2 CPUs (avx2), 16.0 GiB RAM, Python 3.11.7, Linux 6.1; "
        "load average (1 min) 0.25 → unknown from start to end; aiohttp 3.11.0"
    )
    assert lines[1].startswith("- Machine probe: CPU AVX2 yes, AVX-512 no") and "clip 250 ms" in lines[1]
    assert _machine().markdown().splitlines()[1] == "- Machine probe: not run"
    assert machine_info(None).flags == cpu_flags()  # this machine's, read once from /proc/cpuinfo


def test_table_rows_match_the_header_and_escape_pipes() -> None:
    table = Table(["Stage", "ms"], right=(1,)).add("a | b", 12).add("c", "—")
    assert table.markdown() == "| Stage | ms |\n|---|---:|\n| a \\| b | 12 |\n| c | — |"
    assert row(table.markdown(), "c") == ["—"]
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        table.add("only one")


def test_publish_heads_the_report_with_command_time_and_machine_and_writes_it_to_measurements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], measurements_elsewhere: Path
) -> None:
    from benchmarks.report import publish

    said: list[str] = []
    copy = tmp_path / "copy.md"
    path = publish("unit_test", "# Title\n\nBody\n", "python -m x --y", _machine(), markdown_path=copy, say=said.append)
    assert path == measurements_elsewhere / "unit_test.md"
    document = path.read_text(encoding="utf-8")
    assert document == copy.read_text(encoding="utf-8") == capsys.readouterr().out
    head, _, body = document.partition("\n\nBody")
    assert head.startswith("# Title\n\n<!-- Written by") and body == "\n"
    assert "- Command: `python -m x --y`" in head and "- Finished: 2026-12-07T18:00:00+00:00 (UTC)" in head
    assert _machine().markdown() in head
    assert said == [f"wrote {copy}", f"wrote {path}"]
    for bad in ("../x", "Report", "a/b", ""):
        with pytest.raises(ValueError):
            publish(bad, "x", "cmd", _machine())


def test_a_chart_is_linked_relative_to_the_published_report(measurements_elsewhere: Path) -> None:
    chart = measurements_elsewhere.parent / "chart.png"
    assert image(chart, "A chart") == "\n![A chart](../chart.png)\n"
    assert image(None, "A chart") == ""


def test_the_interruptions_report_reads_its_typed_records() -> None:
    from benchmarks.interruptions_report import InterruptionsRun, Screened, render_markdown, summarise

    results = [
        Screened("tuning", "Yeah.", "backchannel", 1.0, None, False, "ignored", "Yeah.", -0.1, None, None, None),
        Screened("tuning", "Okay.", "backchannel", 1.0, 10.0, True, "voiced", "Okay then", -0.2, 400.0, 80.0, None),
        Screened(
            "tuning",
            "Hold on a second.",
            "interruption",
            1.0,
            None,
            True,
            "voiced",
            "Hold on",
            -0.1,
            600.0,
            -200.0,
            50.0,
        ),
    ]
    summary = summarise(results)
    assert (summary.backchannels, summary.backchannels_not_stopping, summary.interruptions_stopping) == (2, 0.5, 1.0)
    assert (
        summary.commands == 0 and summary.commands_stopping == 0.0 and summary.command_stop_after_end_ms_median is None
    )
    report = render_markdown(
        InterruptionsRun("python -m benchmarks.interruptions", _machine(), 400, -0.5, {"tuning": summary}, results)
    )
    assert row(report, "backchannels that do not stop the reply") == ["50 % of 2"]
    assert row(report, "short commands (< 3 words) that stop it") == ["0 % of 0"]
    assert row(report, "command stop decision after the speech ends (median / p90)") == ["– / – ms"]
    # Only the backchannel that stopped the reply went the wrong way.
    assert "- tuning backchannel 'Okay.' at rate 1.0, SNR 10.0: voiced 'Okay then' (avg_logprob -0.2)" in report
    assert "Yeah." not in report.split("Went the other way:", 1)[1]


def test_a_saved_machine_reads_back_as_it_was_for_a_report_written_from_json() -> None:
    import json
    from dataclasses import asdict

    from benchmarks.machine_probe import MachineProbe

    machine = _machine(MachineProbe(("avx2", "avx512f"), 250.4, 160.0, None, 0, 3))
    saved = json.loads(json.dumps(asdict(machine)))
    assert MachineInfo.from_json(saved) == machine
    older = {k: v for k, v in saved.items() if k != "flags"}  # runs saved before MachineInfo had its flags
    assert MachineInfo.from_json(older).flags == ("avx2", "avx512f")
