"""HTTP API tests against a real small library (FakeEncoder, real audio files, real SQLite)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the server extra (fastapi, uvicorn, python-multipart) is not installed")
pytest.importorskip("httpx", reason="httpx is needed by FastAPI's TestClient")

from fastapi.testclient import TestClient  # noqa: E402

from conftest import TEST_VOCAB, noise, tone, write  # noqa: E402
from earmark.engine.server import create_app  # noqa: E402
from earmark.engine.server.routes_vocabulary import rank_completions  # noqa: E402

TOKEN = "s3cret-token"


def make_library(base: Path):
    """A library over ``sound_dir``'s files plus a symlink that leads out of the root, indexed."""
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    sounds = base / "sounds"
    write(sounds / "beep.wav", tone(2000, 1.5, 16000), 16000)
    write(sounds / "hum.flac", tone(100, 2.0, 44100), 44100)
    write(sounds / "noise.ogg", noise(3.0, 22050), 22050, format="OGG", subtype="VORBIS")
    write(sounds / "sub" / "stereo.wav", np.stack([tone(2000, 1.0, 48000), noise(1.0, 48000)], axis=1), 48000)
    outside = write(base / "outside" / "private.wav", tone(440, 1.0, 16000), 16000)
    os.symlink(outside, sounds / "escape.wav")
    lib = Library.init(base / "lib", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    report = lib.index([sounds])
    assert not report.to_dict().get("failed"), report.to_dict()
    return lib, sounds


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One library for the tests that only read (building one takes a second or two)."""
    return make_library(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def indexed(tmp_path):
    """A fresh library for tests that change it."""
    return make_library(tmp_path)[0]


@pytest.fixture
def lib(shared):
    return shared[0]


@pytest.fixture
def sound_dir(shared) -> Path:
    return shared[1]


def client_for(library, **kw) -> TestClient:
    return TestClient(create_app(library.path, library=library, **kw))


@pytest.fixture
def client(shared) -> TestClient:
    return client_for(shared[0])


def sound_id(client: TestClient, path: str) -> int:
    sounds = client.get("/api/sounds", params={"limit": 100}).json()["sounds"]
    return next(s["id"] for s in sounds if s["path"] == path)


def assert_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in resp.text
    if code is not None:
        assert err["code"] == code, err
    return err


# ---------------------------------------------------------------------------- reading
def test_status_reports_the_library_and_a_read_only_server(client, sound_dir):
    body = client.get("/api/status").json()
    assert body["sounds_indexed"] == 5 and body["segments"] > 0
    assert body["roots"] == [str(sound_dir.resolve())]
    assert body["server"]["writes_enabled"] is False


def test_sounds_list_and_metadata(client):
    listing = client.get("/api/sounds").json()
    paths = sorted(s["path"] for s in listing["sounds"])
    assert paths == ["beep.wav", "escape.wav", "hum.flac", "noise.ogg", "sub/stereo.wav"]
    sid = sound_id(client, "hum.flac")
    meta = client.get(f"/api/sounds/{sid}").json()
    assert meta["path"] == "hum.flac" and meta["sample_rate"] == 44100
    assert meta["duration"] == pytest.approx(2.0, abs=1e-3) and meta["segments"] > 0
    assert client.get("/api/sounds", params={"limit": 2}).json()["count"] == 2


def test_unknown_and_malformed_ids_get_json_errors(client):
    assert_error(client.get("/api/sounds/999999"), 404, "sound_not_found")
    assert_error(client.get("/api/sounds/999999/audio"), 404, "sound_not_found")
    err = assert_error(client.get("/api/sounds/abc"), 422, "invalid_request")
    assert "sound_id" in err["message"]
    assert_error(client.get("/api/sounds", params={"limit": 0}), 422, "invalid_request")
    assert_error(client.get("/api/no/such/route"), 404)


# ---------------------------------------------------------------------------- audio
def test_audio_whole_file_and_byte_ranges(client, sound_dir):
    sid = sound_id(client, "beep.wav")
    data = (sound_dir / "beep.wav").read_bytes()
    full = client.get(f"/api/sounds/{sid}/audio")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "audio/wav"
    assert full.headers["accept-ranges"] == "bytes"

    part = client.get(f"/api/sounds/{sid}/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"

    tail = client.get(f"/api/sounds/{sid}/audio", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]

    bad = client.get(f"/api/sounds/{sid}/audio", headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416

    head = client.head(f"/api/sounds/{sid}/audio")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(data)


def test_audio_of_other_formats_has_browser_types(client, sound_dir):
    for path, media in [("hum.flac", "audio/flac"), ("noise.ogg", "audio/ogg")]:
        resp = client.get(f"/api/sounds/{sound_id(client, path)}/audio")
        assert resp.status_code == 200 and resp.headers["content-type"] == media
        assert resp.content == (sound_dir / path).read_bytes()


def test_symlink_out_of_the_roots_is_refused(client):
    sid = sound_id(client, "escape.wav")
    assert_error(client.get(f"/api/sounds/{sid}/audio"), 403, "outside_roots")
    assert_error(client.get(f"/api/sounds/{sid}/peaks"), 403, "outside_roots")


def test_traversal_in_a_stored_path_is_refused(indexed):
    from earmark.index.store import Sound

    client = client_for(indexed)
    sid = sound_id(client, "beep.wav")
    with indexed.session() as s, s.begin():
        s.get(Sound, sid).path = "../outside/private.wav"  # a corrupted or hostile row
    assert_error(client.get(f"/api/sounds/{sid}/audio"), 403, "outside_roots")


def test_missing_file_is_404_not_500(indexed):
    client = client_for(indexed)
    sid = sound_id(client, "hum.flac")
    (Path(client.get(f"/api/sounds/{sid}").json()["root"]) / "hum.flac").unlink()
    assert_error(client.get(f"/api/sounds/{sid}/audio"), 404, "file_missing")


def test_peaks_follow_the_signal(client):
    beep = client.get(f"/api/sounds/{sound_id(client, 'beep.wav')}/peaks", params={"points": 50}).json()
    assert beep["points"] == 50 and len(beep["min"]) == len(beep["max"]) == 50
    assert beep["duration"] == pytest.approx(1.5)
    # a 0.5-amplitude tone: every bucket spans nearly the whole ±0.5 swing (16-bit WAV rounding)
    assert np.allclose(beep["max"], 0.5, atol=0.01) and np.allclose(beep["min"], -0.5, atol=0.01)
    assert_error(client.get(f"/api/sounds/{sound_id(client, 'beep.wav')}/peaks", params={"points": 0}), 422)


# ---------------------------------------------------------------------------- writes and auth
def test_write_endpoints_are_off_without_a_token(client, tmp_path):
    assert_error(client.post("/api/index", json={"paths": [str(tmp_path)]}), 403, "writes_disabled")
    assert_error(client.post("/api/remove", json={"refs": [1]}), 403, "writes_disabled")


def test_write_endpoints_need_the_right_token(indexed, tmp_path):
    client = client_for(indexed, token=TOKEN)
    assert client.get("/api/status").json()["server"]["writes_enabled"] is True
    new_dir = tmp_path / "more"
    write(new_dir / "low.wav", tone(80, 1.2, 16000), 16000)
    body = {"paths": [str(new_dir)]}
    assert_error(client.post("/api/index", json=body), 401, "unauthorized")
    assert_error(client.post("/api/index", json=body, headers={"Authorization": "Bearer nope"}), 401)
    assert_error(client.post("/api/index", json=body, headers={"Authorization": TOKEN}), 401)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert_error(client.post("/api/index", json={"paths": [str(tmp_path / "absent")]}, headers=auth),
                 400, "path_not_found")
    assert_error(client.post("/api/index", json={"paths": []}, headers=auth), 422, "invalid_request")

    report = client.post("/api/index", json=body, headers=auth)
    assert report.status_code == 200, report.text
    assert client.get("/api/status").json()["sounds_indexed"] == 6
    sid = sound_id(client, "low.wav")

    assert_error(client.post("/api/remove", json={"refs": [sid]}), 401)
    removed = client.post("/api/remove", json={"refs": [sid]}, headers=auth)
    assert removed.status_code == 200 and [s["id"] for s in removed.json()["removed"]] == [sid]
    assert_error(client.get(f"/api/sounds/{sid}"), 404, "sound_not_found")
    assert_error(client.post("/api/remove", json={"refs": [987654]}, headers=auth), 400, "library_error")


def test_locked_library_is_409(lib, tmp_path):
    from earmark.engine.lock import WriterLock

    client = client_for(lib, token=TOKEN)
    held = WriterLock(lib.path).acquire()
    try:
        resp = client.post("/api/index", json={"paths": [str(tmp_path)]}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert_error(resp, 409, "library_locked")
    finally:
        held.release()


# ---------------------------------------------------------------------------- errors, CORS, page
def test_unexpected_errors_hide_their_details(lib, monkeypatch):
    def boom():
        raise RuntimeError("secret internal detail /home/someone")

    monkeypatch.setattr(lib, "status", boom)
    client = TestClient(create_app(lib.path, library=lib), raise_server_exceptions=False)
    resp = client.get("/api/status")
    err = assert_error(resp, 500, "internal")
    assert "secret" not in resp.text and "RuntimeError" not in resp.text and "server log" in err["message"]


def test_a_full_disk_is_507_with_a_clear_message_and_no_paths(lib, monkeypatch):
    import errno

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/secret/indexes/.dense.tmp")

    monkeypatch.setattr(lib, "status", full)
    client = TestClient(create_app(lib.path, library=lib), raise_server_exceptions=False)
    resp = client.get("/api/status")
    err = assert_error(resp, 507, "storage")
    assert "disk is full" in err["message"] and "secret" not in resp.text


def test_cors_is_off_by_default_and_on_for_listed_origins(lib):
    origin = {"Origin": "http://tool.example"}
    plain = client_for(lib).get("/api/status", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    cors = client_for(lib, cors_origins=["http://tool.example"]).get("/api/status", headers=origin)
    assert cors.headers["access-control-allow-origin"] == "http://tool.example"
    other = client_for(lib, cors_origins=["http://tool.example"]).get("/api/status", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_page_and_its_assets_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="q"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        resp = client.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 500
    text = page.text + client.get("/static/app.js").text + client.get("/static/style.css").text
    assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    spec = client.get("/openapi.json").json()
    for path in ("/api/search", "/api/search/upload", "/api/sounds/{sound_id}/audio", "/api/sounds/{sound_id}/similar",
                 "/api/sounds/{sound_id}/concepts", "/api/sounds/{sound_id}/evidence", "/api/vocabulary/complete",
                 "/api/status", "/api/index", "/api/remove"):
        assert path in spec["paths"], path


# ---------------------------------------------------------------------------- uploads and like: references
def wav_bytes(seconds: float, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(2000, seconds, sr), sr, format="WAV")
    return buf.getvalue()


def test_uploads_over_the_limit_get_413_before_search(lib):
    client = client_for(lib, max_upload_mb=0.05)  # 50 kB
    uploads = lib.path / "server-uploads"
    # Far over: refused on Content-Length by the middleware, before the body is parsed.
    err = assert_error(client.post("/api/search/upload", files={"file": ("big.wav", wav_bytes(6.0), "audio/wav")}),
                       413, "upload_too_large")
    assert "0.05 MB" in err["message"]
    # Chunked (no Content-Length): refused while counting the bytes as they arrive.
    body = (b'--zz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + wav_bytes(10.0) + b"\r\n--zz--\r\n")
    resp = client.post("/api/search/upload", content=(body[i:i + 8192] for i in range(0, len(body), 8192)),
                       headers={"content-type": "multipart/form-data; boundary=zz"})
    assert_error(resp, 413, "upload_too_large")
    # Just over (within the multipart slack): refused by the size check of the saved file.
    err = assert_error(client.post("/api/search/upload", files={"file": ("b.wav", wav_bytes(1.7), "audio/wav")}),
                       413, "upload_too_large")
    assert "50000 bytes" in err["message"]
    assert not uploads.exists() or list(uploads.glob("*")) == []


def test_uploads_that_are_not_audio_get_422_and_leave_nothing(lib):
    client = client_for(lib)
    resp = client.post("/api/search/upload", files={"file": ("fake.wav", b"not audio at all" * 10, "audio/wav")})
    assert_error(resp, 422, "bad_audio")
    assert_error(client.post("/api/search/upload", files={"file": ("e.wav", b"", "audio/wav")}), 400, "empty_upload")
    assert list((lib.path / "server-uploads").glob("*")) == []


def test_like_references_must_name_library_sounds(client, tmp_path):
    outside = write(tmp_path / "elsewhere.wav", tone(300, 1.0, 16000), 16000)
    assert_error(client.get("/api/search", params={"q": f"like:{outside}"}), 403, "outside_roots")
    assert_error(client.get("/api/search", params={"q": "like:/etc/passwd"}), 403, "outside_roots")
    assert_error(client.get("/api/search", params={"q": "rain like:../../etc/passwd"}), 400, "like_not_in_library")
    assert_error(client.get("/api/search", params={"q": "like:999999"}), 404, "sound_not_found")
    assert_error(client.get("/api/search", params={"q": ""}), 422)
    assert_error(client.get("/api/search", params={"q": "x", "k": 0}), 422)
    assert_error(client.get("/api/search", params={"q": "x", "ranking": "magic"}), 422)


def test_completions_rank_prefixes_before_word_starts_before_substrings():
    words = ["thunder", "rain on roof", "heavy rain", "drain", "Rainforest", "music"]
    assert rank_completions(words, "rain", 10) == ["rain on roof", "Rainforest", "heavy rain", "drain"]
    assert rank_completions(words, "rain_on", 10) == ["rain on roof"]
    assert rank_completions(words, "rain", 2) == ["rain on roof", "Rainforest"]
    assert rank_completions(words, "zzz", 5) == []


# ---------------------------------------------------------------------------- search and explanations
def _engine_has(*names: str) -> bool:
    from earmark.engine.library import Library

    return all(hasattr(Library, n) for n in names)


needs_evidence = pytest.mark.skipif(not _engine_has("evidence"), reason="this earmark's Library has no evidence()")


def test_search_ranks_and_explains(client):
    resp = client.get("/api/search", params={"q": "high beep tone", "k": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    hits = body["hits"]
    assert 1 <= len(hits) <= 3 and "query" in body
    assert hits[0]["path"] in ("beep.wav", "sub/stereo.wav")  # the two 2 kHz sounds
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert h["audio_url"] == f"/api/sounds/{h['sound_id']}/audio"
        assert 0 <= h["start"] < h["end"]
        total = sum(c["contribution"] for c in h["contributions"])
        assert total == pytest.approx(h["concept_score"], abs=1e-4)  # contributions sum to the concept score


def test_search_rankings_and_filters(client):
    for ranking in ("dense", "concept", "fusion"):
        resp = client.get("/api/search", params={"q": "low hum", "ranking": ranking, "k": 5})
        assert resp.status_code == 200, resp.text
    dense = client.get("/api/search", params={"q": "low hum", "ranking": "dense", "k": 1}).json()
    assert dense["hits"][0]["path"] == "hum.flac"
    # dense is the default ranking (docs/model-card.md, "Text search on an unseen library")
    assert client.get("/api/search", params={"q": "low hum", "k": 1}).json()["query"]["ranking"] == "dense"
    # ... with windows pooled by power as its default aggregate; the window-only rankings cannot pool
    assert client.get("/api/search", params={"q": "low hum", "k": 1}).json()["query"]["aggregate"] == "pooled"
    err = assert_error(client.get("/api/search", params={"q": "low hum", "ranking": "fusion", "aggregate": "pooled"}), 400)
    assert err["field"] == "aggregate" and "needs ranking 'dense'" in err["message"]
    sub = client.get("/api/search", params={"q": "beep", "path_glob": "sub/*", "k": 5}).json()["hits"]
    assert sub and all(h["path"].startswith("sub/") for h in sub)
    short = client.get("/api/search", params={"q": "beep", "max_duration": 1.6, "k": 10}).json()["hits"]
    durations = {s["id"]: s["duration"] for s in client.get("/api/sounds").json()["sounds"]}
    assert short and all(durations[h["sound_id"]] <= 1.6 for h in short)


def test_unknown_concepts_are_400_with_suggestions(client):
    word = client.get("/api/vocabulary", params={"limit": 1}).json()["concepts"][0]
    typo = "+" + "_".join(word.split()) + "zq"
    err = assert_error(client.get("/api/search", params={"q": typo}), 400)
    assert err["code"] in ("unknown_concept", "query_syntax")
    if err["code"] == "unknown_concept":
        assert isinstance(err["suggestions"], list)


def test_like_by_id_and_similar_put_the_sound_itself_first(client):
    hum = sound_id(client, "hum.flac")
    like = client.get("/api/search", params={"q": f"like:{hum}", "ranking": "dense", "k": 3})
    assert like.status_code == 200, like.text
    assert like.json()["hits"][0]["sound_id"] == hum
    similar = client.get(f"/api/sounds/{hum}/similar", params={"k": 3, "ranking": "dense"})
    assert similar.status_code == 200, similar.text
    ids = [h["sound_id"] for h in similar.json()["hits"]]
    assert ids and hum not in ids  # the sound itself is left out
    quoted = client.get("/api/search", params={"q": 'like:"hum.flac"@0.5-1.5', "ranking": "dense", "k": 1})
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["hits"][0]["sound_id"] == hum
    assert_error(client.get("/api/sounds/999999/similar"), 404, "sound_not_found")


def test_upload_query_by_example(lib, client):
    resp = client.post("/api/search/upload", params={"k": 2, "ranking": "dense"},
                       files={"file": ("example.wav", wav_bytes(1.0), "audio/wav")})
    assert resp.status_code == 200, resp.text
    assert resp.json()["hits"][0]["path"] in ("beep.wav", "sub/stereo.wav")
    assert list((lib.path / "server-uploads").glob("*")) == []


def test_concepts_and_vocabulary(client):
    sid = sound_id(client, "noise.ogg")
    body = client.get(f"/api/sounds/{sid}/concepts", params={"top": 5}).json()
    assert body["sound_id"] == sid and len(body["concepts"]) <= 5
    weights = [c["weight"] for c in body["concepts"]]
    assert weights == sorted(weights, reverse=True) and all(w >= 0 for w in weights)
    vocab = client.get("/api/vocabulary", params={"limit": 3}).json()
    assert vocab["total"] >= 3 and len(vocab["concepts"]) == 3
    word = vocab["concepts"][1]
    done = client.get("/api/vocabulary/complete", params={"prefix": word[:4]}).json()["completions"]
    assert word in done and all(word[:4].lower() in w.lower() for w in done)


@pytest.fixture(scope="module")
def evidence_client(tmp_path_factory):
    """A library on the differentiable toy encoder: evidence needs gradients through the encoder."""
    from evidence_toy_encoder import ToyBandEncoder

    from earmark.engine.library import Library

    base = tmp_path_factory.mktemp("evidence")
    write(base / "sounds" / "beep.wav", tone(1000, 1.5, 8000) + noise(1.5, 8000, amp=0.05), 8000)
    write(base / "sounds" / "hiss.wav", noise(2.0, 8000), 8000)
    lib = Library.init(base / "lib", encoder=ToyBandEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([base / "sounds"])
    return client_for(lib)


@needs_evidence
def test_evidence_files(evidence_client):
    client = evidence_client
    sid = sound_id(client, "beep.wav")
    params = {"start": 0.0, "end": 1.0, "q": "beep tone"}
    resp = client.get(f"/api/sounds/{sid}/evidence", params=params)
    assert resp.status_code == 200, resp.text
    ev = resp.json()
    assert ev["method"] in ("lmac", "gradient-saliency") and ev["label"]
    assert (ev["start"], ev["end"]) == (0.0, 1.0) and ev["sound_id"] == sid
    assert "mask_in_wav" not in ev and "path" not in ev  # server paths are not handed out
    png = client.get(ev["png_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    for key in ("mask_in_url", "mask_out_url"):
        wav = client.get(ev[key])
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        audio, sr = sf.read(io.BytesIO(wav.content))
        assert sr > 0 and len(audio) > 0 and np.isfinite(audio).all()
    best = client.get(f"/api/sounds/{sid}/evidence", params={"q": "beep tone"})  # the best window
    assert best.status_code == 200, best.text
    assert best.json()["end"] > best.json()["start"] >= 0
    assert_error(client.get(f"/api/sounds/{sid}/evidence", params={**params, "end": 0.0}), 422)
    assert_error(client.get(f"/api/sounds/{sid}/evidence", params={**params, "start": 1.0, "end": 0.5}), 400, "bad_range")
    assert_error(client.get(f"/api/sounds/{sid}/evidence", params={**params, "start": 9.0, "end": 10.0}), 400, "bad_range")
    assert_error(client.get("/api/sounds/999999/evidence", params=params), 404, "sound_not_found")


def test_evidence_of_a_file_outside_the_roots_is_refused(client):
    escape = sound_id(client, "escape.wav")
    resp = client.get(f"/api/sounds/{escape}/evidence", params={"q": "beep", "start": 0, "end": 1})
    assert_error(resp, 403, "outside_roots")


# ---------------------------------------------------------------------------- fuzzing

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PARAM_VALUES = st.one_of(st.text(max_size=60), st.integers(-10**12, 10**12).map(str),
                          st.sampled_from(["", "nan", "inf", "-1", "1e309", "0x10", "../../etc/passwd", "%00", "\u202e"]))
_READ_ROUTES = st.sampled_from(["/api/search", "/api/sounds", "/api/sounds/{id}", "/api/sounds/{id}/similar",
                                "/api/sounds/{id}/concepts", "/api/sounds/{id}/peaks", "/api/vocabulary",
                                "/api/vocabulary/complete", "/api/sounds/{id}/audio"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=_READ_ROUTES, sound=st.one_of(st.sampled_from(["1", "2"]), _PARAM_VALUES),
       params=st.dictionaries(st.sampled_from(["q", "k", "ranking", "aggregate", "path_glob", "min_duration",
                                               "max_duration", "root", "offset", "limit", "prefix", "top", "points",
                                               "start", "end"]), _PARAM_VALUES, max_size=5))
def test_fuzz_read_endpoints_answer_or_give_a_json_4xx(client, route, sound, params):
    """Random paths and parameters: a result or a JSON 4xx error, never a 5xx or a traceback."""
    from urllib.parse import quote

    url = route.replace("{id}", quote(sound, safe="") or "%20")
    resp = client.get(url, params=params)
    assert resp.status_code < 500, (url, params, resp.text[:300])
    if resp.status_code >= 400:
        assert_error(resp, resp.status_code)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)),
       ctype=st.sampled_from(["application/json", "multipart/form-data; boundary=x", "text/plain", "audio/wav"]))
def test_fuzz_write_and_upload_bodies_are_refused_cleanly(lib, body, ctype):
    """Garbage bodies on the upload and token-protected write endpoints: no 5xx, JSON errors, nothing indexed."""
    client = client_for(lib, token="s3cret")
    before = lib.status().segments
    for url in ("/api/search/upload", "/api/index", "/api/remove"):
        resp = client.post(url, content=body, headers={"content-type": ctype, "authorization": "Bearer s3cret"})
        assert resp.status_code < 500, (url, resp.status_code, resp.text[:300])
        if resp.status_code >= 400:
            assert_error(resp, resp.status_code)
    assert lib.status().segments == before
