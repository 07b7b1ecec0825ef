"""Training-corpus sources: the container readers (Qt .rcc, OpenTTD .cat, zip) and the label
rules of the packages read through them. Containers are written here byte by byte after the
formats' documented layouts, holding real WAV files written by soundfile."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.engine.training.archives import ArchiveError, cat_members, extract_audio, rcc_members, zip_members
from earmark.engine.training.corpus import CorpusError, decode_wavpack, label_package, unpack_archives
from earmark.engine.training.captions import MUSIC_LABELS


def _wav(freq: float, seconds: float = 0.2) -> bytes:
    t = np.arange(int(44100 * seconds)) / 44100
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t), 44100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A compiled Qt resource file: {"dir/sub/name.ext": (bytes, zlib-compressed)}."""
    entry = 14 if version == 1 else 22
    # Build the directory tree, then lay nodes out breadth-first (children of a dir contiguous).
    tree: dict = {}
    for path, payload in files.items():
        node = tree
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = payload
    names = bytearray()
    name_off: dict[str, int] = {}

    def name(n: str) -> int:
        if n not in name_off:
            name_off[n] = len(names)
            names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
        return name_off[n]

    nodes: list[tuple[str, object]] = [("", tree)]
    order: list[tuple[str, object, int]] = []  # (name, content, first child index)
    i = 0
    while i < len(nodes):
        n, content = nodes[i]
        first = len(nodes)
        if isinstance(content, dict):
            nodes.extend(sorted(content.items()))
        order.append((n, content, first))
        i += 1
    data = bytearray()
    tree_bytes = bytearray()
    for n, content, first in order:
        off = name(n) if n else 0
        if isinstance(content, dict):
            rec = struct.pack(">IHII", off, 0x02, len(content), first)
        else:
            payload, compressed = content
            blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if compressed else payload
            rec = struct.pack(">IHHHI", off, 0x01 if compressed else 0, 0, 0, len(data))
            data.extend(struct.pack(">I", len(blob)) + blob)
        tree_bytes.extend(rec.ljust(entry, b"\0"))
    header = 20 if version == 1 else 24
    tree_off = header
    data_off = tree_off + len(tree_bytes)
    names_off = data_off + len(data)
    head = b"qres" + struct.pack(">4I", version, tree_off, data_off, names_off)
    head = head.ljust(header, b"\0")
    return bytes(head + tree_bytes + data + names)


def _cat(entries: list[tuple[str, bytes]]) -> bytes:
    """An OpenTTD sound catalogue of (name, wav bytes)."""
    table = 8 * len(entries)
    body = bytearray()
    pairs = []
    for name, wav in entries:
        raw = name.encode("latin-1") + b"\0"
        rec = bytes([len(raw)]) + raw + wav
        pairs.append((table + len(body), len(rec)))
        body.extend(rec)
    head = b"".join(struct.pack("<II", (off | 0x80000000) if i == 0 else off, size) for i, (off, size) in enumerate(pairs))
    return head + bytes(body)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_walks_tree_and_inflates(tmp_path, version):
    beep, low = _wav(1000), _wav(200)
    path = tmp_path / "x.rcc"
    path.write_bytes(_rcc({
        "gcompris/src/activities/a/resource/cow.ogg": (low, True),
        "gcompris/src/activities/a/resource/beep.wav": (beep, False),
        "gcompris/src/activities/a/resource/image.svg": (b"<svg/>", True),
        "gcompris/src/core/resource/sounds/water.wav": (beep, True),
    }, version))
    got = dict(rcc_members(path))
    assert set(got) == {"gcompris/src/activities/a/resource/cow.ogg", "gcompris/src/activities/a/resource/beep.wav",
                        "gcompris/src/core/resource/sounds/water.wav"}
    assert got["gcompris/src/activities/a/resource/cow.ogg"] == low
    assert got["gcompris/src/activities/a/resource/beep.wav"] == beep
    data, sr = sf.read(io.BytesIO(got["gcompris/src/core/resource/sounds/water.wav"]))
    assert sr == 44100 and len(data) == int(44100 * 0.2)


def test_rcc_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.rcc"
    bad.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(ArchiveError, match="bad.rcc"):
        list(rcc_members(bad))
    truncated = tmp_path / "cut.rcc"
    truncated.write_bytes(_rcc({"a/b.wav": (_wav(440), False)})[:-40])
    with pytest.raises(ArchiveError, match="cut.rcc"):
        list(rcc_members(truncated))


def test_cat_reader_names_by_title_and_checks_bounds(tmp_path):
    path = tmp_path / "opensfx.cat"
    entries = [('"Cow". Original "moo.wav" by someone. License: CC0.', _wav(150)),
               ('"Diesel/electric train station departure". By X.', _wav(300)),
               ('"Not audio"', b"junk data here")]
    path.write_bytes(_cat(entries))
    got = list(cat_members(path))
    assert [n for n, _ in got] == ["00 Cow.wav", "01 Diesel_electric train station departure.wav"]
    assert got[0][1] == entries[0][1]
    path.write_bytes(_cat(entries)[:-100])
    with pytest.raises(ArchiveError, match="entry 1 runs past the end"):
        list(cat_members(path))


def test_zip_reader_keeps_audio_only(tmp_path):
    path = tmp_path / "sounds.pk3"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("sound/weapons/shotgun/fire.wav", _wav(500))
        zf.writestr("scripts/x.shader", "text")
    assert [n for n, _ in zip_members(path)] == ["sound/weapons/shotgun/fire.wav"]


def test_extract_never_writes_outside_dest(tmp_path):
    path = tmp_path / "evil.rcc"
    path.write_bytes(_rcc({"../../escape.wav": (_wav(440), False), "ok/fine.wav": (_wav(440), False)}))
    dest = tmp_path / "out"
    assert extract_audio(path, dest) == 2
    assert (dest / "escape.wav").exists() and (dest / "ok" / "fine.wav").exists()
    assert not (tmp_path.parent / "escape.wav").exists()


def _package(root: Path, package: str) -> Path:
    doc = root / "usr" / "share" / "doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("License: GPL-3+\n")
    return root


def test_gcompris_and_openttd_labels_from_containers(tmp_path):
    g = _package(tmp_path / "g", "gcompris-qt-data")
    rcc_dir = g / "usr" / "share" / "gcompris-qt" / "rcc"
    rcc_dir.mkdir(parents=True)
    click = _wav(3000, 0.05)
    (rcc_dir / "memory-sound.rcc").write_bytes(_rcc({
        "gcompris/src/activities/memory-sound/resource/LRRain_in_garden_01_LA_cut.ogg": (_wav(100), True),
        "gcompris/src/activities/memory-sound/resource/LRWeird_3_LA.ogg": (_wav(120), True),
        "gcompris/src/activities/x/resource/click.wav": (click, False),
    }))
    (rcc_dir / "canal_lock.rcc").write_bytes(_rcc({
        "gcompris/src/activities/canal_lock/resource/door_open.wav": (_wav(90), True),
        "gcompris/src/activities/y/resource/click.wav": (click, False),  # same bytes: dropped
    }))
    unpack_archives(g)
    labels = sorted((it.label, Path(it.path).name) for it in label_package("gcompris-qt-data", g))
    assert labels == [("a click", "click.wav"), ("rain", "LRRain_in_garden_01_LA_cut.ogg")]

    o = _package(tmp_path / "o", "openttd-opensfx")
    cat_dir = o / "usr" / "share" / "games" / "openttd" / "baseset" / "opensfx"
    cat_dir.mkdir(parents=True)
    (cat_dir / "opensfx.cat").write_bytes(_cat([
        ('"Good Year". By J.', _wav(600)),  # a jingle: left out
        ('"Lumber mill: Chainsaw". Original "CHAINSAW.wav". License: CC-BY-3.0.', _wav(700)),
        ('"Tropical: Monkeys". Original "Affen schreit.mp3".', _wav(800)),
    ]))
    unpack_archives(o)
    items = label_package("openttd-opensfx", o)
    assert sorted(it.label for it in items) == ["a chainsaw", "monkeys chattering"]
    assert all(it.licence == "GPL-3+" and it.captions for it in items)


def test_megaglest_unit_sounds_are_labelled_by_what_the_unit_does(tmp_path):
    """Unit folders and action suffixes decide the label, not stray words like "wood" or "fly"."""
    m = _package(tmp_path / "m", "megaglest-data")
    techs = m / "usr" / "share" / "games" / "megaglest" / "techs" / "megapack"
    files = {
        "commondata/sounds/worker_harvest_wood1.wav": "an axe chopping wood",
        "commondata/sounds/axe_thrower_attack1.wav": "an axe being thrown",
        "factions/norsemen/units/battleaxe/sounds/daemon_attack1.wav": "an axe striking",  # a fighter's, not a woodcutter's
        "factions/norsemen/units/spearman/sounds/swordman_attack1.wav": "a spear thrust",
        "factions/norsemen/units/swordman/sounds/swordman_attack1.wav": "a sword clashing",
        "factions/magic/units/initiate/sounds/initiate_build1.wav": "a magic spell",
        "commondata/sounds/worker_build1.wav": "hammering",
        "factions/tech/units/airship/sounds/airship_fly.wav": "a flying machine whirring",
        "factions/magic/units/evil_dragon/sounds/evil_dragon_fly.wav": "wings flapping",
        "factions/indian/units/bull/sounds/bull_die1.wav": "a bull bellowing",
        # machines are wrecked, roll and clank; a horseman walks on his horse's hooves
        "commondata/sounds/catapult_die1.wav": "a crash",
        "factions/tech/units/ornithopter/sounds/orni_die1.wav": "a crash",
        "factions/tech/units/technician/sounds/technician_die1.wav": "a man screaming in pain",
        "commondata/sounds/catapult_walk1.wav": "a cart rolling",
        "factions/tech/units/battle_machine/sounds/machine_walk1.wav": "machinery",
        "commondata/sounds/horseman_walk1.wav": "horse hooves galloping",
        "commondata/sounds/golem_walk1.wav": "footsteps",
    }
    for i, rel in enumerate(files):
        (techs / rel).parent.mkdir(parents=True, exist_ok=True)
        (techs / rel).write_bytes(_wav(200 + 37 * i))  # distinct bytes: no duplicate is dropped
    got = {str(Path(it.path).relative_to(techs)): it.label for it in label_package("megaglest-data", m)}
    assert got == files


def _write_wavs(base: Path, rels, first_freq: int) -> None:
    """A distinct little WAV at each relative path (distinct: the corpus drops duplicate files)."""
    for i, rel in enumerate(rels):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(_wav(first_freq + 37 * i))


def test_ambience_loops_and_footsteps_are_labelled_by_their_sound(tmp_path):
    """'loop' says how a sound is used: an ambience loop is its sound, a bare loop is music; a
    footstep word beats the material beside it, which becomes the surface."""
    f = _package(tmp_path / "f", "flare-game")
    fx = f / "usr" / "share" / "games" / "flare" / "mods" / "fantasycore" / "soundfx"
    files = {
        "environment/open_fire_loop.ogg": "fire crackling",
        "environment/river_loop.ogg": "a stream of running water",
        "environment/cave_wind_loop.ogg": "wind blowing",
        "environment/bird_twitter_loop.ogg": "birds chirping",
        "steps/step_leather1.ogg": "footsteps, leather shoes",
        "steps/step_cloth1.ogg": "footsteps",
        "music/title_loop.ogg": "a piece of music",  # music folders decide before keywords
        "misc/battle_loop.ogg": "a music loop",
    }
    _write_wavs(fx, files, 200)
    got = {str(Path(it.path).relative_to(fx)): it.label for it in label_package("flare-game", f)}
    assert got == files


def _teeworlds(tmp_path: Path) -> tuple[Path, Path]:
    t = _package(tmp_path / "t", "teeworlds-data")
    audio = t / "usr" / "share" / "games" / "teeworlds" / "data" / "audio"
    audio.mkdir(parents=True)
    return t, audio


@pytest.mark.skipif(shutil.which("wavpack") is None or shutil.which("wvunpack") is None,
                    reason="needs WavPack's wavpack/wvunpack (apt-get install wavpack)")
def test_teeworlds_wavpack_is_decoded_and_labelled(tmp_path):
    t, audio = _teeworlds(tmp_path)
    for i, stem in enumerate(["wp_gun_fire-01", "foley_foot_left-02", "wp_hammer_hit-01", "sfx_pickup_hrt-01"]):
        src = tmp_path / f"{stem}.wav"
        src.write_bytes(_wav(300 + 50 * i))
        subprocess.run(["wavpack", "-q", "-y", str(src), "-o", str(audio / f"{stem}.wv")], check=True)
    (audio / "wp_gun_fire-02.part.wav").write_bytes(b"half a file")  # left by an interrupted decode
    assert decode_wavpack(t) == 4
    assert not list(audio.glob("*.part.wav"))
    decoded, rate = sf.read(audio / "wp_gun_fire-01.wav")
    assert rate == 44100 and np.allclose(decoded, sf.read(io.BytesIO(_wav(300)))[0], atol=1e-4)  # lossless
    labels = sorted((Path(it.path).name, it.label) for it in label_package("teeworlds-data", t))
    # the .wv originals are not read twice; the pickup blip has no everyday name
    assert labels == [("foley_foot_left-02.wav", "footsteps"), ("wp_gun_fire-01.wav", "a gunshot"),
                      ("wp_hammer_hit-01.wav", "a hammer hitting")]


def test_wavpack_without_wvunpack_names_the_tool_and_file(tmp_path, monkeypatch):
    t, audio = _teeworlds(tmp_path)
    (audio / "wp_gun_fire-01.wv").write_bytes(b"wvpk")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CorpusError, match=r"wvunpack.*wp_gun_fire-01\.wv.*apt-get install wavpack"):
        decode_wavpack(t)


def test_spoken_descriptions_and_unit_voices_are_labelled_by_who_speaks(tmp_path):
    """tuxpaint's `*_desc.ogg` (English) and `*_desc_xx.ogg` are speech even in its music folder,
    whose other files are instrument notes; a megaglest unit that is an animal (by its name or
    its file's) dies and answers as that animal, and its female units speak as women."""
    tp = _package(tmp_path / "tp", "tuxpaint-stamps-default")
    stamps = tp / "usr" / "share" / "tuxpaint" / "stamps"
    tux = {
        "animals/mammals/bears/bear_desc.ogg": "a person speaking English",
        "animals/mammals/bears/bear.ogg": "a bear growling",
        "hobbies/music/string/cello_desc_bg.ogg": "a person speaking Bulgarian",
        "hobbies/music/percussion/cymbal_crash.ogg": "a cymbal crash",
        "hobbies/music/wind/bassoon.ogg": "music",  # no keyword names it: one of the music labels
    }
    mg = _package(tmp_path / "mg", "megaglest-data")
    units = mg / "usr" / "share" / "games" / "megaglest" / "techs" / "megapack" / "factions"
    glest = {
        "egypt/units/chicken/sounds/chicken_die1.wav": "a chicken clucking",
        "indian/units/thunderbird/sounds/eagle_die1.wav": "a hawk screeching",
        "persian/units/princess/sounds/princess_die2.wav": "a woman screaming in pain",
        "norsemen/units/valkyrie/sounds/valkyrie_ack3.wav": "female speech, woman speaking",
        "norsemen/units/swordman/sounds/swordman_die3.wav": "a man screaming in pain",
    }
    _write_wavs(stamps, tux, 300)
    _write_wavs(units, glest, 800)
    got = {str(Path(it.path).relative_to(stamps)): it.label for it in label_package("tuxpaint-stamps-default", tp)}
    assert got.pop("hobbies/music/wind/bassoon.ogg") in MUSIC_LABELS
    assert got == {k: v for k, v in tux.items() if v != "music"}
    got = {str(Path(it.path).relative_to(units)): it.label for it in label_package("megaglest-data", mg)}
    assert got == glest


def test_crash_cymbals_are_cymbals_not_crashes(tmp_path):
    """"crash" alone is a collision ("a crash"), but beside "cymbal" or in a drum folder it is a
    crash cymbal; supertuxkart's kart crashes stay crashes."""
    lm = _package(tmp_path / "lm", "lmms-common")
    samples = lm / "usr" / "share" / "lmms" / "samples"
    _write_wavs(samples, {"drums/crash01.ogg": "a cymbal crash", "effects/crash.ogg": "a crash"}, 300)
    got = {str(Path(it.path).relative_to(samples)): it.label for it in label_package("lmms-common", lm)}
    assert got == {"drums/crash01.ogg": "a cymbal crash", "effects/crash.ogg": "a crash"}
    sc = _package(tmp_path / "sc", "scratch")
    sounds = sc / "usr" / "share" / "scratch" / "Media" / "Sounds"
    _write_wavs(sounds, {"Percussion/CymbalCrash.wav": "", "Effects/Crash.wav": ""}, 300)
    got = {str(Path(it.path).relative_to(sounds)): it.label for it in label_package("scratch", sc)}
    assert got == {"Percussion/CymbalCrash.wav": "a cymbal crash", "Effects/Crash.wav": "a crash"}


def test_drum_kit_pieces_are_not_everyday_sounds(tmp_path):
    """A kit's "snare ... shot1" is no gunshot, a pedal hi-hat no footsteps, a splash cymbal no water."""
    h = _package(tmp_path / "h", "hydrogen-drumkits")
    kits = h / "usr" / "share" / "hydrogen" / "data" / "drumkits"
    _write_wavs(kits, {"Kit/snare-opaque-normal_shot2.flac": "", "Kit/tom_shot1.flac": ""}, 300)
    got = {Path(it.path).name: it.label for it in label_package("hydrogen-drumkits", h)}
    assert got["snare-opaque-normal_shot2.flac"] == "a snare drum hit"
    lm = _package(tmp_path / "lm", "lmms-common")
    samples = lm / "usr" / "share" / "lmms" / "samples"
    _write_wavs(samples, {"drums/hihat_foot_pedal01.ogg": "", "effects/footstep01.ogg": ""}, 400)
    got = {Path(it.path).name: it.label for it in label_package("lmms-common", lm)}
    assert got == {"hihat_foot_pedal01.ogg": "a hi-hat", "footstep01.ogg": "footsteps"}
    sp = _package(tmp_path / "sp", "sonic-pi-samples")
    sp_samples = sp / "usr" / "share" / "sonic-pi" / "samples"
    _write_wavs(sp_samples, {"drum_splash_hard.flac": "", "drum_cymbal_pedal.flac": "",
                             "drum_snare_soft.flac": ""}, 500)
    got = {Path(it.path).name: it.label for it in label_package("sonic-pi-samples", sp)}
    assert got == {"drum_splash_hard.flac": "a splash cymbal", "drum_cymbal_pedal.flac": "a pedal hi-hat",
                   "drum_snare_soft.flac": "a snare drum hit"}


def test_openarena_weapon_files_are_labelled_by_what_they_are(tmp_path):
    """Quake III's weapon folders hold launches, flights, bounces and ricochets, not only shots
    and blasts: only the rocket's "x" file is an explosion."""
    o = _package(tmp_path / "o", "openarena-data")
    weapons = o / "usr" / "share" / "_archives" / "pak0" / "sound" / "weapons"
    files = {"rocket/rockfly.wav": "a rocket flying", "rocket/rocklf1a.wav": "a rocket launch",
             "rocket/rocklx1a.wav": "an explosion", "grenade/hgrenb1a.wav": "a grenade bouncing",
             "machinegun/ric1.wav": "a bullet ricochet", "machinegun/machgf1b.wav": "machine gun fire",
             "railgun/rg_hum.wav": "electrical hum", "railgun/railgf1a.wav": "a laser zap"}
    _write_wavs(weapons, files, 200)
    got = {str(Path(it.path).relative_to(weapons)): it.label for it in label_package("openarena-data", o)}
    assert got == files


@pytest.mark.skipif(shutil.which("sox") is None or shutil.which("espeak-ng") is None,
                    reason="needs sox and espeak-ng")
def test_synthesised_sounds_are_the_same_bytes_in_any_cache(tmp_path: Path):
    """sox runs with -R (repeatable dither and noise), so two caches hold the same sounds and the
    model card's command reproduces the shipped training set; the noise variants still differ."""
    from earmark.engine.training.corpus import synthesise

    digests = []
    for where in ("a", "b"):
        items = synthesise(tmp_path / where)
        digests.append({Path(it.path).name: hashlib.sha1(Path(it.path).read_bytes()).hexdigest() for it in items})
    assert digests[0] == digests[1]
    assert len(set(digests[0].values())) == len(digests[0])  # no two sounds alike (noise variants included)
    assert not list(tmp_path.rglob("*.tmp.wav"))


def test_cache_keys_name_sounds_inside_the_cache(tmp_path: Path):
    """A sound's key is its place in the cache; a package's symlink is keyed by its target when
    that is in the cache too, and by its own place when it leads out (no error)."""
    from earmark.engine.training.corpus import _cache_key

    cache = tmp_path / "cache"
    sounds = cache / "x" / "pkg" / "usr" / "share" / "sounds"
    sounds.mkdir(parents=True)
    (sounds / "a.wav").write_bytes(_wav(440.0))
    (sounds / "b.wav").symlink_to("a.wav")
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(_wav(220.0))
    (sounds / "c.wav").symlink_to(outside)
    assert _cache_key(sounds / "a.wav", cache) == "x/pkg/usr/share/sounds/a.wav"
    assert _cache_key(sounds / "b.wav", cache) == "x/pkg/usr/share/sounds/a.wav"
    assert _cache_key(sounds / "c.wav", cache) == "x/pkg/usr/share/sounds/c.wav"


def test_scratch_vocals_are_singing_and_beatboxing_not_speech(tmp_path):
    """Scratch's Vocals folder holds sung phrases and beatboxing; the voice-folder rule once
    called all eleven "a person speaking", the prototype the query "speech" borrows most."""
    sc = _package(tmp_path / "sc", "scratch")
    sounds = sc / "usr" / "share" / "scratch" / "Media" / "Sounds"
    _write_wavs(sounds, {"Vocals/BeatBox1.wav": "", "Vocals/Singer2.wav": "", "Vocals/Come-and-play.wav": ""}, 400)
    got = {Path(it.path).name: it.label for it in label_package("scratch", sc)}
    assert got == {"BeatBox1.wav": "beatboxing", "Singer2.wav": "a person singing", "Come-and-play.wav": "a person singing"}
