"""/predict against the container: real held-out digits, every input style, every error."""

from __future__ import annotations

import httpx
from container_images import b64, held_out_digits, noise_png, pixel_bomb_png

MIN_ACCURACY = 0.95
UPLOADS_PER_REQUEST = 32


def multipart(pngs: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"image{i}.png", png, "image/png")) for i, png in enumerate(pngs)]


def top_indices(body: dict) -> list[int]:
    return [ranked[0]["index"] for ranked in body["predictions"]]


def test_predict_classifies_held_out_digit_pngs_with_at_least_95_percent_accuracy(
    client: httpx.Client,
) -> None:
    pngs, labels = held_out_digits()
    predicted: list[int] = []
    for start in range(0, len(pngs), UPLOADS_PER_REQUEST):
        chunk = pngs[start : start + UPLOADS_PER_REQUEST]
        response = client.post("/predict", files=multipart(chunk))
        assert response.status_code == 200, response.text
        predicted += top_indices(response.json())
    correct = sum(p == label for p, label in zip(predicted, labels, strict=True))
    assert correct / len(labels) >= MIN_ACCURACY, f"{correct}/{len(labels)} correct"


def test_multipart_upload_answers_each_image_in_order(client: httpx.Client) -> None:
    pngs, _ = held_out_digits()
    singles = [
        top_indices(client.post("/predict", files=multipart([png])).json())[0] for png in pngs[:5]
    ]
    response = client.post("/predict", files=multipart(pngs[:5]), params={"top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "digits"
    assert len(body["predictions"]) == 5
    assert all(len(ranked) == 3 for ranked in body["predictions"])
    assert top_indices(body) == singles
    for ranked in body["predictions"]:
        scores = [entry["score"] for entry in ranked]
        assert scores == sorted(scores, reverse=True)
        assert 0.0 <= scores[-1] <= scores[0] <= 1.0
        assert {"label", "index", "score"} <= set(ranked[0])


def test_raw_png_body_is_classified_like_its_upload(client: httpx.Client) -> None:
    pngs, _ = held_out_digits()
    raw = client.post("/predict", content=pngs[0], headers={"Content-Type": "image/png"})
    upload = client.post("/predict", files=multipart(pngs[:1]))
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"] == upload.json()["predictions"]


def test_base64_json_images_match_the_multipart_answer(client: httpx.Client) -> None:
    pngs, _ = held_out_digits()
    as_json = client.post("/predict", json={"images": [b64(png) for png in pngs[:4]]})
    as_files = client.post("/predict", files=multipart(pngs[:4]))
    assert as_json.status_code == 200, as_json.text
    assert top_indices(as_json.json()) == top_indices(as_files.json())


def test_top_k_beyond_the_class_count_is_clamped(client: httpx.Client) -> None:
    pngs, _ = held_out_digits()
    response = client.post("/predict", files=multipart(pngs[:1]), params={"top_k": 1000})
    assert response.status_code == 200, response.text
    ranked = response.json()["predictions"][0]
    assert sorted(entry["index"] for entry in ranked) == list(range(10))


def test_model_query_selects_resnet18_which_takes_any_image_size(client: httpx.Client) -> None:
    response = client.post(
        "/predict", files=multipart([noise_png(300)]), params={"model": "resnet18", "top_k": 2}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "resnet18"
    assert len(body["predictions"][0]) == 2


def test_corrupt_image_is_rejected_with_a_message_naming_the_problem(
    client: httpx.Client,
) -> None:
    corrupt = held_out_digits()[0][0][:40]  # a PNG cut short
    response = client.post("/predict", files=multipart([corrupt]))
    assert response.status_code in (400, 415), response.text
    assert "image" in response.json()["error"].lower()


def test_non_image_upload_is_rejected(client: httpx.Client) -> None:
    response = client.post(
        "/predict", content=b"plain text", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code in (400, 415), response.text


def test_body_over_the_size_limit_is_rejected_with_413(client: httpx.Client) -> None:
    too_large = b"\0" * (33 * 1024 * 1024)  # the default limit is 32 MiB
    response = client.post("/predict", content=too_large, headers={"Content-Type": "image/png"})
    assert response.status_code == 413, response.text


def test_decompression_bomb_is_rejected_with_413(client: httpx.Client) -> None:
    bomb = pixel_bomb_png(10_000, 5_000)  # 50 MP, above the default 40 MP limit
    response = client.post("/predict", files=multipart([bomb]))
    assert response.status_code == 413, response.text
    assert "pixel" in response.json()["error"].lower()


def test_unknown_model_is_404_naming_the_available_models(client: httpx.Client) -> None:
    pngs, _ = held_out_digits()
    response = client.post("/predict", files=multipart(pngs[:1]), params={"model": "nope"})
    assert response.status_code == 404, response.text
    message = response.json()["error"]
    assert "nope" in message
    assert "digits" in message
    assert "resnet18" in message
