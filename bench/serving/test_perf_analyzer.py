"""The perf_analyzer runner's bookkeeping (bench/perf_analyzer): the arguments it passes, the
CSV it reads back, what it says when perf_analyzer stops, and the table it prints. No server and
no perf_analyzer: a stand-in script plays the binary."""

from __future__ import annotations

import stat

import pytest

from bench.perf_analyzer import report
from bench.perf_analyzer.measurements import Level, parse_csv
from bench.perf_analyzer.runner import Case, Outcome, Pace, Tool, arguments, failure, run_case

# As perf_analyzer 2.60 writes it (-f) against Triton, which reports server-side statistics.
TRITON_CSV = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,"
    "Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "16,7437.14,27,1153,625,32,284,23,0,1712,3115,3413,5865\n"
)
# Without server-side statistics perf_analyzer leaves the server columns out.
CLIENT_ONLY_CSV = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Client Recv,"
    "p50 latency,p90 latency,p95 latency,p99 latency\n"
    "1,404.5,35,2400,0,2397,2491,2561,4576\n"
)
PACE = Pace(measurement_interval_ms=3000, max_trials=8, stability_percent=25, timeout_s=30)


def test_csv_levels_carry_throughput_latencies_and_server_times():
    [level] = parse_csv(TRITON_CSV)
    assert (level.concurrency, level.infer_per_s) == (16, pytest.approx(7437.14))
    assert (level.p50_us, level.p99_us) == (1712, 5865)
    assert level.server_us == {
        "queue_us": 625, "compute_input_us": 32, "compute_infer_us": 284, "compute_output_us": 23
    }  # fmt: skip
    [level] = parse_csv(CLIENT_ONLY_CSV)
    assert (level.concurrency, level.p50_us, level.server_us) == (1, 2397, {})


def test_csv_that_is_not_a_concurrency_report_is_refused():
    with pytest.raises(ValueError, match="p50 latency"):
        parse_csv("Request Rate,Inferences/Second\n10,9.9\n")


def test_arguments_measure_one_level_over_the_protocol_s_port(tmp_path):
    csv_path = tmp_path / "r.csv"
    http = arguments(Case("triton", "digits", "http", 16), 8000, PACE, csv_path)
    assert http[:6] == ["-m", "digits", "-u", "127.0.0.1:8000", "-i", "http"]
    assert http[http.index("--concurrency-range") + 1] == "16:16"
    assert http[http.index("--stability-percentage") + 1] == "25"
    assert http[-2:] == ["-f", str(csv_path)]
    grpc = arguments(Case("triton", "digits", "grpc", 1), 8000, PACE, csv_path)
    assert grpc[3] == "127.0.0.1:8001"


def test_failure_quotes_perf_analyzer_s_own_error_lines():
    output = (
        "*** Measurement Settings ***\n  Batch size: 1\n"
        "error: failed to get model config: Not Found\n"
    )
    assert failure(output, 99) == "exit 99: error: failed to get model config: Not Found"
    assert failure("one\ntwo\nthree\nfour\n", 1) == "exit 1: two / three / four"
    assert failure("", 1) == "exit 1: no output"


def _stand_in(tmp_path, body: str) -> Tool:
    """A script in perf_analyzer's place: `body` runs with the arguments it was given."""
    script = tmp_path / "perf_analyzer.sh"
    script.write_text(f'#!/usr/bin/env bash\ncsv="${{@: -1}}"\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return Tool(script, tmp_path / "pa-home", PACE)


def test_run_case_reads_the_level_perf_analyzer_wrote(tmp_path):
    tool = _stand_in(tmp_path, f"printf '%s' '{TRITON_CSV}' > \"$csv\"")
    case = Case("triton", "digits", "http", 16)
    outcome = run_case(tool, case, 8000, tmp_path / "out.csv")
    assert outcome.error is None and outcome.level.infer_per_s == pytest.approx(7437.14)


def test_run_case_reports_why_perf_analyzer_stopped(tmp_path):
    tool = _stand_in(tmp_path, "echo 'error: failed to get model config' >&2; exit 99")
    outcome = run_case(tool, Case("blockserve", "digits", "grpc", 1), 8000, tmp_path / "o.csv")
    assert outcome.level is None
    assert outcome.error == "exit 99: error: failed to get model config"


def test_run_case_never_takes_an_earlier_report_for_its_own(tmp_path):
    stale = tmp_path / "out.csv"
    stale.write_text(TRITON_CSV)
    tool = _stand_in(tmp_path, "echo 'Failed to obtain stable measurement.'")
    outcome = run_case(tool, Case("triton", "digits", "http", 16), 8000, stale)
    assert outcome.level is None
    assert outcome.error == "exit 0: Failed to obtain stable measurement."


def _level(concurrency, rate, p50_us=2000, server=True):
    server_us = {"queue_us": 10} if server else {}
    return Level(concurrency, rate, p50_us, 2 * p50_us, server_us)


def test_table_puts_both_servers_side_by_side_with_the_ratio():
    outcomes = [
        Outcome(Case("triton", "digits", "http", 16), _level(16, 1000.0)),
        Outcome(Case("blockserve", "digits", "http", 16), _level(16, 500.0, 4000, server=False)),
        Outcome(Case("triton", "resnet18", "grpc", 1), _level(1, 10.0)),
        Outcome(Case("blockserve", "resnet18", "grpc", 1), None, "exit 99: error: no config"),
    ]
    rows = report.table(outcomes, "Triton").splitlines()[2:]
    assert rows == [
        "| digits | http | 16 | 1000.0 | 500.0 | 0.50x | 2.0 / 4.0 | 4.0 / 8.0 | none |",
        "| resnet18 | grpc | 1 | 10.0 | – | – | 2.0 / – | 4.0 / – | – |",
    ]
    assert report.failures(outcomes) == [
        "blockserve, resnet18, grpc, c=1: exit 99: error: no config"
    ]


def test_docs_section_states_the_run_and_lists_what_was_not_measured():
    outcomes = [
        Outcome(Case("triton", "digits", "grpc", 1), _level(1, 300.0)),
        Outcome(Case("blockserve", "digits", "grpc", 1), None, "exit 99: error: no config"),
    ]
    info = report.RunInfo(
        "2026-12-05T10:00:00+00:00", "cmd --x", 2, 0.5, 1.5, "2.60.0", "Triton",
        ["Triton: notes", "blockserve: notes"], PACE, 2,
    )  # fmt: skip
    body = report.section_body(outcomes, info)
    assert "load average 0.50 at start, 1.50 at end. perf_analyzer 2.60.0" in body
    assert "`cmd --x`" in body and "--stability-percentage 25" in body
    assert report.table(outcomes, "Triton") in body
    assert body.endswith(
        "No measurement:\n\n- blockserve, digits, grpc, c=1: exit 99: error: no config"
    )
