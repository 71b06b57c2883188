"""The benchmark's bookkeeping, which must be right for its numbers to mean anything.

They check parsing, request bodies, ordering, option selection and target arithmetic, never
speed, so they run with the test suite (`bench/serving` is in pytest's testpaths).
"""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench.serve.options import parse_options
from bench.serving import targets
from bench.serving.bodies import BINARY_HEADER_LENGTH, MULTIPART_BOUNDARY, write_bodies
from bench.serving.docs import SERVING, Section, method, replace_section
from bench.serving.images import write_corpus
from bench.serving.load import LoadResult, parse_wrk_output, run_wrk
from bench.serving.paired import HeadToHead, alternate
from bench.serving.profile import summarize
from bench.serving.results import (
    Ceiling,
    CeilingPoint,
    Machine,
    Point,
    RunMeta,
    RunResults,
    RunSettings,
    ServerInfo,
)
from bench.serving.scrape import HistogramTotals, mean_batch_size
from bench.serving.servers import REPO, SERVERS, Settings, blockserve_with_grpc

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


def _listing(path):
    """The listing file as [(body bytes, {header: value})]."""
    entries = []
    for line in path.read_text().splitlines():
        body, *headers = line.split("\t")
        content = Path(body).read_bytes()
        entries.append((content, dict(h.split(": ", 1) for h in headers)))
    return entries


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, "L").save(path)
    return path


def test_raw_multipart_and_base64_bodies_carry_the_image_and_its_type(tmp_path, png):
    [(body, headers)] = _listing(write_bodies([png], "raw", tmp_path / "raw"))
    assert (body, headers) == (png.read_bytes(), {"Content-Type": "image/png"})
    [(body, headers)] = _listing(write_bodies([png], "multipart", tmp_path / "mp"))
    assert headers["Content-Type"] == f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    assert b"Content-Type: image/png\r\n\r\n" + png.read_bytes() + b"\r\n" in body
    [(body, headers)] = _listing(write_bodies([png], "base64-json", tmp_path / "js"))
    assert base64.b64decode(json.loads(body)["image_data"]) == png.read_bytes()
    with pytest.raises(ValueError, match="unknown body kind"):
        write_bodies([png], "xml", tmp_path)


def _expected_tensor():
    return (np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) * 4) / 127.5 - 1.0


def test_v2_json_body_is_the_scaled_pixel_tensor(tmp_path, png):
    [(body, headers)] = _listing(write_bodies([png], "v2-json", tmp_path / "v2"))
    [tensor] = json.loads(body)["inputs"]
    assert headers == {"Content-Type": "application/json"}
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("input", [1, 1, 8, 8], "FP32")
    assert np.allclose(tensor["data"], _expected_tensor().ravel(), atol=1e-6)


def test_v2_binary_body_follows_the_binary_tensor_data_extension(tmp_path, png):
    [(body, headers)] = _listing(write_bodies([png], "v2-binary", tmp_path / "bin"))
    split = int(headers[BINARY_HEADER_LENGTH])
    header, raw = json.loads(body[:split]), body[split:]
    [tensor] = header["inputs"]
    assert tensor["parameters"]["binary_data_size"] == len(raw) == 64 * 4
    assert np.array_equal(np.frombuffer(raw, np.float32), _expected_tensor().ravel())
    assert header["parameters"] == {"binary_data_output": True}


# What tritonclient.http 2.73 sends for infer("resnet18", [InferInput("input", [1, 3, 224, 224],
# "FP32")]) with the data set from numpy: its JSON header, byte for byte.
TRITONCLIENT_RESNET18_HEADER = (
    b'{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32",'
    b'"parameters":{"binary_data_size":602112}}],"parameters":{"binary_data_output":true}}'
)


def test_resnet18_tensor_body_is_what_tritonclient_sends(tmp_path):
    [jpeg] = write_corpus(tmp_path / "rgb", "rgb224", 1)
    [(body, headers)] = _listing(write_bodies([jpeg], "v2-binary", tmp_path / "bin"))
    split = int(headers[BINARY_HEADER_LENGTH])
    assert body[:split] == TRITONCLIENT_RESNET18_HEADER
    with Image.open(jpeg) as image:
        pixels = np.asarray(image, np.float32).transpose(2, 0, 1)[None]  # (1, 3, H, W)
    raw = np.frombuffer(body[split:], "<f4").reshape(1, 3, 224, 224)
    assert np.allclose(raw, pixels / 127.5 - 1.0)


def test_bytes_body_is_a_length_prefixed_image_per_element(tmp_path, png):
    [(body, headers)] = _listing(write_bodies([png], "v2-bytes-binary", tmp_path / "bytes"))
    split = int(headers[BINARY_HEADER_LENGTH])
    [tensor] = json.loads(body[:split])["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("image", [1, 1], "BYTES")
    image = png.read_bytes()
    assert body[split:] == struct.pack("<I", len(image)) + image
    assert tensor["parameters"]["binary_data_size"] == len(image) + 4


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_wrk_script_posts_each_body_with_its_own_headers(tmp_path, png):
    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers[BINARY_HEADER_LENGTH], body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    listing = write_bodies([png], "v2-binary", tmp_path / "bin")
    [(expected_body, headers)] = _listing(listing)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/digits/infer"
        result = run_wrk(url, listing, concurrency=1, seconds=1, max_requests=3)
        server.shutdown()
    assert result.ok >= 1 and result.failed == 0
    assert seen[0] == (headers[BINARY_HEADER_LENGTH], expected_body)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_answers_other_than_2xx_count_as_errors_not_throughput(tmp_path, png):
    class Refuser(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = b'{"error": "body is not valid JSON"}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    listing = write_bodies([png], "v2-binary", tmp_path / "bin")
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuser) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/digits/infer"
        result = run_wrk(url, listing, concurrency=1, seconds=1, max_requests=3)
        server.shutdown()
    assert result.ok == 0 and result.throughput == 0.0
    assert result.failed == result.statuses["400"] >= 1


def test_corpus_is_seeded_images_of_the_requested_kind(tmp_path):
    first = write_corpus(tmp_path / "a", "gray8", 2)
    again = write_corpus(tmp_path / "b", "gray8", 2)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    with Image.open(first[0]) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (8, 8))
    [photo] = write_corpus(tmp_path / "c", "rgb451x300", 1)
    with Image.open(photo) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (451, 300))


def test_request_path_targets_select_their_servers_and_workloads():
    options = parse_options(["--targets", "request-path", "--quick"])
    assert options.servers == (
        "blockserve", "blockserve-workers", "blockserve-baseline", "triton", "mlserver"
    )  # fmt: skip
    assert options.workloads == ("digits-v2", "digits-predict", "resnet18-jpeg")
    assert options.concurrency == (1, 32, 64)
    assert [t.name for t in targets.selected(list(options.targets))] == [
        "triton-digits-v2",
        "baseline-digits-v2",
        "baseline-digits-png",
        "triton-resnet18-jpeg",
        "triton-digits-p50",
    ]
    everything = parse_options([])
    assert {"triton", "torchserve", "blockserve-unbatched"} <= set(everything.servers)
    assert everything.concurrency == (1, 8, 16, 32, 64)
    assert "triton-resnet18-binary" in [t.name for t in targets.selected(list(everything.targets))]
    with pytest.raises(SystemExit):
        parse_options(["--targets", "fastest"])


def test_binary_tensor_target_pits_the_same_binary_body_against_triton(tmp_path):
    options = parse_options(["--targets", "binary-tensor", "--quick"])
    assert (options.servers, options.workloads, options.concurrency) == (
        ("blockserve", "triton"), ("resnet18-v2",), (16,)
    )  # fmt: skip
    [target] = targets.selected(list(options.targets))
    assert (target.ours.server, target.reference.server) == ("blockserve", "triton")
    assert target.ours.body == target.reference.body == "v2-binary"
    assert (target.ours.concurrency, target.bound, target.rule) == (16, 1.0, targets.AT_LEAST)
    for server in ("blockserve", "triton"):  # the JSON bodies are swept too, as context
        case = SERVERS[server](_settings(tmp_path), 8000)
        assert case.endpoint("resnet18-v2").bodies == ("v2-binary", "v2-json")


def _settings(work):
    config = REPO / "service" / "configs" / "default.yaml"
    return Settings(work, work, work, work, config, None, 16, 5.0, False, 1, 1)


def test_blockserve_for_perf_analyzer_serves_grpc_next_to_http(tmp_path):
    command = blockserve_with_grpc(_settings(tmp_path), 8000).launch.command
    assert command[command.index("--grpc-port") + 1] == "8001"
    config = yaml.safe_load(Path(command[command.index("--config") + 1]).read_text())
    assert config["server"]["grpc"]["enabled"] is True
    command = SERVERS["blockserve"](_settings(tmp_path), 8000).launch.command
    assert command[command.index("--grpc-port") + 1] == "0"
    config = yaml.safe_load(Path(command[command.index("--config") + 1]).read_text())
    assert config["server"]["grpc"]["enabled"] is False


def _pair(name, unit, reference, blockserve):
    """A head-to-head entry with the same value in each of two rounds."""
    return HeadToHead(name, name, "blockserve", unit, [reference] * 2, [blockserve] * 2)


def _load(concurrency=64, p50=30.0, p99=50.0, failed=0):
    return LoadResult(
        concurrency, 10.0, 10, 10, 3, failed, p50, p50, p99, p50, p99, {"200": 10}, False
    )


def _results(groups, pairs, tail=None):
    settings = RunSettings([1, 32, 64], 10.0, 3.0, 1000, [], [], groups, 4, 5.0, "c.yaml")
    meta = RunMeta(
        "t0", False, "cmd", settings, Machine("cpu", 2, 1.0, "k", "3.11"), {}, [0.1, 0.1, 0.1]
    )
    points = [Point("blockserve", "resnet18-224", "raw", tail, 16.0, 2.0)] if tail else []
    servers = {"blockserve": ServerInfo("blockserve", False, "")}
    return RunResults(meta, servers=servers, points=points, head_to_head=pairs)


def _verdicts(results):
    return [t.passed for t in targets.evaluate(results)]


REQUEST_PATH_PASSING = [
    _pair("triton-digits-v2", "req/s", 10_000.0, 5_000.0),  # 0.5 x Triton
    _pair("baseline-digits-v2", "req/s", 1_000.0, 4_000.0),  # 4 x baseline
    _pair("baseline-digits-png", "req/s", 1_000.0, 3_000.0),  # 3 x baseline
    _pair("triton-resnet18-jpeg", "img/s", 45.0, 45.0),  # 1.0 x Triton
    _pair("triton-digits-p50", "ms", 1.0, 1.5),  # p50 at most 1.5 x Triton's
]


def test_request_path_targets_pass_on_their_bounds_and_fail_past_them():
    assert _verdicts(_results(["request-path"], REQUEST_PATH_PASSING)) == [True] * 5
    failing = [
        _pair("triton-digits-v2", "req/s", 10_000.0, 4_900.0),
        _pair("baseline-digits-v2", "req/s", 1_000.0, 3_900.0),
        _pair("baseline-digits-png", "req/s", 1_000.0, 2_900.0),
        _pair("triton-resnet18-jpeg", "img/s", 45.0, 44.0),
        _pair("triton-digits-p50", "ms", 1.0, 1.6),
    ]
    assert _verdicts(_results(["request-path"], failing)) == [False] * 5


def test_ceiling_and_peer_targets_keep_their_thresholds():
    pairs = [
        _pair("ceiling", "img/s", 85.0, 80.0),  # 0.94 >= 0.90
        _pair("serial", "ms", 28.0, 30.0),  # +2 ms <= +3 ms
        _pair("torchserve", "img/s", 40.0, 80.0),  # 2x >= 1.5x
    ]
    results = _results(["ceiling", "peers"], pairs, tail=_load())
    # ceiling, serial, litserve-documented, torchserve, litserve-onnx, tail
    assert _verdicts(results) == [True, True, None, True, None, True]
    pairs = [
        _pair("ceiling", "img/s", 85.0, 76.0),
        _pair("serial", "ms", 28.0, 31.5),
        _pair("torchserve", "img/s", 50.0, 70.0),
    ]
    results = _results(["ceiling", "peers"], pairs, tail=_load(p99=61.0))
    assert _verdicts(results) == [False, False, None, False, None, False]


def test_ratio_targets_need_head_to_head_rounds():
    assert _verdicts(_results(["request-path"], [])) == [None] * 5


def test_tail_target_fails_on_errors_other_than_503():
    assert _verdicts(_results(["ceiling"], [], tail=_load(failed=1)))[-1] is False


def test_results_survive_their_json_form():
    ceiling = Ceiling("resnet18", [CeilingPoint(1, 40, 1.0), CeilingPoint(16, 800, 16.0)], 1, 19)
    results = _results(["ceiling"], [_pair("ceiling", "img/s", 50.0, 49.0)], tail=_load())
    results.ceilings["resnet18-224"] = ceiling
    results.servers["triton"] = ServerInfo("Triton", True, "notes", error="no venv")
    again = RunResults.from_json(results.to_json())
    assert again == results
    assert again.ceilings["resnet18-224"].best.batch_size == 16


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


def test_docs_section_is_replaced_in_place_and_other_sections_kept():
    begin, end = SERVING.begin, SERVING.end
    text = f"# Benchmarks\n\n## Serving\n\n{begin}\nold\n{end}\n\n## Runtimes\n\nkept\n"
    section = f"## Serving\n\n{begin}\nnew\n{end}\n"
    updated = replace_section(text, SERVING, "new")
    assert updated == f"# Benchmarks\n\n{section}\n## Runtimes\n\nkept\n"
    assert replace_section("# Benchmarks\n", SERVING, "new") == f"# Benchmarks\n\n{section}"


def test_docs_sections_with_other_markers_leave_each_other_alone():
    other = Section("## Other", "other", "python -m bench.other")
    text = replace_section(replace_section("# Benchmarks\n", SERVING, "s1"), other, "o1")
    text = replace_section(text, other, "o2")
    assert text == f"# Benchmarks\n\n{SERVING.wrap('s1')}\n{other.wrap('o2')}"
    renamed = text.replace(other.begin, "<!-- other:begin (generated by an older command) -->")
    assert replace_section(renamed, other, "o3") == text.replace("o2", "o3")


def test_docs_method_is_the_readme_block_between_its_markers():
    readme = "# bench\n\nintro\n<!-- method:begin -->\n- one\n- two\n<!-- method:end -->\nrest\n"
    assert method(readme) == "- one\n- two"
    with pytest.raises(ValueError, match="method:begin"):
        method("# bench without a method\n")


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
