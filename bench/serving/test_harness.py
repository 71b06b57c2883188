"""The benchmark's bookkeeping, which must be right for its numbers to mean anything.

They check parsing, ordering and arithmetic, never speed, so they run with the test suite
(`bench/serving` is in pytest's testpaths).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from serving import report
from serving.bodies import MULTIPART_BOUNDARY, write_bodies
from serving.docs import BEGIN, END, replace_section
from serving.images import write_corpus
from serving.load import parse_wrk_output
from serving.paired import HeadToHead, alternate
from serving.profile import summarize
from serving.scrape import HistogramTotals, mean_batch_size

WRK_RESULT = (
    'RESULT {"requests": 120, "duration_us": 2000000, "bytes": 1, '
    '"socket_errors": {"connect": 0, "read": 1, "write": 0, "timeout": 2}, '
    '"latency_us": {"p50": 1500, "p90": 2000, "p95": 2500, "p99": 4000, "mean": 1600.0, '
    '"max": 9000}, "statuses": {"200": 130, "503": 15, "500": 6}, '
    '"steady_statuses": {"200": 100, "503": 15, "500": 5}}'
)


def test_wrk_result_splits_deliberate_503s_from_other_errors():
    result = parse_wrk_output(f"noise\n{WRK_RESULT}\n", 8, max_requests=1000)
    assert (result.ok, result.rejected, result.failed) == (100, 15, 5 + 3)
    assert result.throughput == pytest.approx(50.0)  # 2xx only, per second
    assert (result.p50_ms, result.p99_ms) == (1.5, 4.0)
    assert not result.capped


def test_wrk_result_counts_only_the_window_after_warm_up():
    result = parse_wrk_output(WRK_RESULT, 8, max_requests=1000, warmup_s=1.0)
    assert result.seconds == pytest.approx(1.0)  # 2 s run - 1 s warm-up
    assert result.throughput == pytest.approx(100.0)  # the 100 steady 2xx answers, not 130


def test_wrk_result_flags_a_run_ended_by_the_request_cap():
    assert parse_wrk_output(WRK_RESULT, 8, max_requests=120).capped


def test_wrk_output_without_result_line_is_an_error():
    with pytest.raises(RuntimeError, match="no RESULT line"):
        parse_wrk_output("unable to connect", 1, max_requests=10)


def test_mean_batch_size_is_the_histogram_delta():
    before, after = HistogramTotals(count=10, total=40), HistogramTotals(count=14, total=88)
    assert mean_batch_size(before, after) == 12.0
    assert mean_batch_size(after, after) is None


def test_bodies_wrap_the_same_jpeg_per_wire_format(tmp_path):
    jpeg = tmp_path / "a.jpg"
    jpeg.write_bytes(b"\xff\xd8jpeg")
    listing, content_type = write_bodies([jpeg], "multipart", tmp_path / "mp")
    body = (tmp_path / "mp" / "a.body").read_bytes()
    assert content_type == f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    assert b"\r\n\r\n\xff\xd8jpeg\r\n" in body and body.endswith(b"--\r\n")
    assert listing.read_text().split() == [str(tmp_path / "mp" / "a.body")]
    listing, content_type = write_bodies([jpeg], "base64-json", tmp_path / "js")
    assert content_type == "application/json"
    assert json.loads((tmp_path / "js" / "a.body").read_text()) == {"image_data": "/9hqcGVn"}
    with pytest.raises(ValueError, match="unknown wire format"):
        write_bodies([jpeg], "xml", tmp_path)


def test_corpus_is_seeded_jpegs_of_the_requested_kind(tmp_path):
    first = write_corpus(tmp_path / "a", "gray32", 2)
    again = write_corpus(tmp_path / "b", "gray32", 2)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    with Image.open(first[0]) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "L", (32, 32))


def _pair(name, unit, reference, blockserve):
    """A head-to-head entry with the same value in each of two rounds."""
    return HeadToHead(name, name, "blockserve", unit, [reference] * 2, [blockserve] * 2).to_dict()


def _results(ceiling=(85.0, 80.0), serial=(28.0, 30.0), torchserve=(40.0, 80.0), tail=(30, 50, 0)):
    p50, p99, failed = tail
    c64 = {
        "server": "blockserve", "model": "resnet18", "concurrency": 64, "throughput": 80.0,
        "ok": 1, "p50_ms": p50, "p99_ms": p99, "rejected": 3, "failed": failed,
    }  # fmt: skip
    return {
        "servers": {name: {"label": name, "peer": True} for name in ("blockserve", "torchserve")},
        "measurements": [c64],
        "head_to_head": [
            _pair("ceiling", "img/s", *ceiling),
            _pair("serial", "ms", *serial),
            _pair("torchserve", "img/s", *torchserve),
        ],
    }


def _verdicts(results):
    return [t.passed for t in report.evaluate_targets(results)]


def test_targets_pass_and_fail_on_the_issue_thresholds():
    # ceiling 80/85, p50 30 <= 28 + 3, 2x torchserve, p99 50 <= 2 x 30; litserve peers absent
    assert _verdicts(_results()) == [True, True, None, True, None, True]
    failing = _results(
        ceiling=(85.0, 76.0), serial=(28.0, 31.5), torchserve=(50, 70), tail=(30, 61, 0)
    )
    assert _verdicts(failing) == [False, False, None, False, None, False]


def test_ratio_targets_need_head_to_head_rounds():
    results = _results()
    del results["head_to_head"]
    assert _verdicts(results) == [None, None, None, None, None, True]


def test_tail_target_fails_on_errors_other_than_503():
    assert _verdicts(_results(tail=(30, 50, 1)))[-1] is False


def test_head_to_head_alternates_sides_so_drift_weighs_on_both():
    calls = []
    a_values, b_values = alternate(
        lambda: calls.append("a") or len(calls), lambda: calls.append("b") or len(calls), 4
    )
    assert "".join(calls) == "abbaabba"
    assert (a_values, b_values) == ([1, 4, 5, 8], [2, 3, 6, 7])
    with pytest.raises(ValueError, match="rounds"):
        alternate(lambda: 1.0, lambda: 1.0, 0)


def test_head_to_head_ratio_is_a_ratio_of_sums():
    pair = HeadToHead("x", "ref", "blockserve", "img/s", [10.0, 30.0], [20.0, 20.0])
    assert pair.ratio == pytest.approx(1.0)  # not the mean of 2.0 and 0.67
    assert pair.round_ratios() == pytest.approx([2.0, 2 / 3])
    assert pair.difference == pytest.approx(0.0)
    assert HeadToHead.from_dict(pair.to_dict()) == pair


def test_docs_section_is_replaced_in_place_and_other_sections_kept():
    text = f"# Benchmarks\n\n## Serving\n\n{BEGIN}\nold\n{END}\n\n## Runtimes\n\nkept\n"
    section = f"## Serving\n\n{BEGIN}\nnew\n{END}\n"
    updated = replace_section(text, section)
    assert updated == f"# Benchmarks\n\n{section}\n## Runtimes\n\nkept\n"
    assert replace_section("# Benchmarks\n", section) == f"# Benchmarks\n\n{section}"


def test_profile_shares_split_engine_time_from_waiting(tmp_path):
    raw = tmp_path / "p.raw"
    engine = "OnnxRuntime.run (service/runtimes/onnx_runtime.py:58)"
    raw.write_text(
        f"thread (1): infer_0;_WorkItem.run (x.py:1);{engine};Session.run (o.py:1) 30\n"
        "thread (1): infer_0;Thread.run (t.py:1);_worker (concurrent/futures/thread.py:81) 70\n"
        "thread (7): native 5\n"
    )
    summary = summarize(raw)
    assert set(summary) == {"infer"}
    assert summary["infer"]["engine"] == pytest.approx(0.3)
    assert summary["infer"]["busy"] == pytest.approx(0.3)
