"""Rebuild engine/demo_sounds (the sounds `earmark demo` indexes) from the training cache.

Each demo sound is a short mono excerpt (at most 6 s, Ogg Vorbis) of a file from an allowed
Debian package with a per-file licence taken from that package's copyright file, or a sound
synthesised by sox / espeak-ng. LICENSES.md lists source package, original path and licence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .features import load_mono

MAX_SECONDS = 6.0
RATE = 44100


@dataclass(frozen=True)
class DemoSource:
    """One demo sound: where it comes from and under which licence."""

    name: str  # file name in engine/demo_sounds (without extension)
    package: str  # Debian package, or "synth"
    path: str  # path inside the unpacked package (or synth/ file under the cache)
    licence: str  # licence of this very file, as the package's copyright file states it
    author: str


SP = "usr/share/sonic-pi/samples/"
FD = "usr/share/sounds/freedesktop/stereo/"
MT = "usr/share/games/minetest/games/minetest_game/mods/doors/sounds/"
FL = "usr/share/games/flare/mods/fantasycore/soundfx/"
SP_LIC = "CC0-1.0"

DEMO_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("choir", "sonic-pi-samples", SP + "ambi_choir.flac", SP_LIC, "Exsomniel (freesound)"),
    DemoSource("piano", "sonic-pi-samples", SP + "ambi_piano.flac", SP_LIC, "Rutger Muller (freesound)"),
    DemoSource("bass_drum", "sonic-pi-samples", SP + "bd_boom.flac", SP_LIC, "Snapper4298 (freesound)"),
    DemoSource("snare_drum", "sonic-pi-samples", SP + "drum_snare_hard.flac", SP_LIC, "menegass (freesound)"),
    DemoSource("cymbal", "sonic-pi-samples", SP + "drum_cymbal_open.flac", SP_LIC, "menegass (freesound)"),
    DemoSource("cowbell", "sonic-pi-samples", SP + "drum_cowbell.flac", SP_LIC, "Neotone (freesound)"),
    DemoSource("drum_break", "sonic-pi-samples", SP + "loop_amen.flac", SP_LIC, "Dolfeus (freesound)"),
    DemoSource("tabla_loop", "sonic-pi-samples", SP + "loop_tabla.flac", SP_LIC, "lezaarth (freesound)"),
    DemoSource("crow", "sonic-pi-samples", SP + "misc_crow.flac", SP_LIC, "davidworksonline (freesound)"),
    DemoSource("burp", "sonic-pi-samples", SP + "misc_burp.flac", SP_LIC, "anas76 (freesound)"),
    DemoSource("bell", "sonic-pi-samples", SP + "perc_bell.flac", SP_LIC, "AlaskaRobotics (freesound)"),
    DemoSource("vinyl_scratch", "sonic-pi-samples", SP + "vinyl_scratch.flac", SP_LIC, "hello_flowers (freesound)"),
    DemoSource("guitar_chord", "sonic-pi-samples", SP + "guit_em9.flac", SP_LIC, "Sub-d (freesound)"),
    DemoSource("cinematic_boom", "sonic-pi-samples", SP + "misc_cineboom.flac", SP_LIC, "Northern_Monkey (freesound)"),
    DemoSource("vinyl_hiss", "sonic-pi-samples", SP + "vinyl_hiss.flac", SP_LIC, "veezay (freesound)"),
    DemoSource("notification_bell", "sound-theme-freedesktop", FD + "bell.oga", "CC-BY-3.0", "Dr. Richard Boulanger et al"),
    DemoSource("trash_empty", "sound-theme-freedesktop", FD + "trash-empty.oga", "CC-BY-3.0", "Dr. Richard Boulanger et al"),
    DemoSource("door_open", "minetest-data", MT + "doors_door_open.ogg", "CC-BY-3.0", "CGEffex"),
    DemoSource("door_close", "minetest-data", MT + "doors_door_close.ogg", "CC-BY-3.0", "CGEffex"),
    DemoSource("glass_door", "minetest-data", MT + "doors_glass_door_open.ogg", "CC-BY-3.0", "CGEffex"),
    DemoSource("stream", "flare-game", FL + "environment/river_loop.ogg", "CC-BY-SA-3.0+", "Clint Bellanger and others (Flare)"),
    DemoSource("campfire", "flare-game", FL + "environment/open_fire_loop.ogg", "CC-BY-SA-3.0+", "Clint Bellanger and others (Flare)"),
    DemoSource("birds", "flare-game", FL + "environment/bird_twitter_loop.ogg", "CC-BY-SA-3.0+", "Clint Bellanger and others (Flare)"),
    DemoSource("wind", "flare-game", FL + "environment/wind_loop.ogg", "CC-BY-SA-3.0+", "Clint Bellanger and others (Flare)"),
    DemoSource("footsteps", "flare-game", FL + "steps/step_leather1.ogg", "CC-BY-SA-3.0+", "Clint Bellanger and others (Flare)"),
    DemoSource("speech_en_male", "synth", "synth/speech_en_0_m3.wav", "CC0-1.0", "earmark (espeak-ng)"),
    DemoSource("speech_en_female", "synth", "synth/speech_en_2_f2.wav", "CC0-1.0", "earmark (espeak-ng)"),
    DemoSource("speech_de_female", "synth", "synth/speech_de_2_f2.wav", "CC0-1.0", "earmark (espeak-ng)"),
    DemoSource("speech_fr_male", "synth", "synth/speech_fr_1_m1.wav", "CC0-1.0", "earmark (espeak-ng)"),
    DemoSource("beep", "synth", "synth/sine_1000_r.wav", "CC0-1.0", "earmark (sox)"),
    DemoSource("white_noise", "synth", "synth/whitenoise_0_r.wav", "CC0-1.0", "earmark (sox)"),
    DemoSource("rising_sweep", "synth", "synth/sweep_up_0_r.wav", "CC0-1.0", "earmark (sox)"),
    DemoSource("clicks", "synth", "synth/clicks_4_r.wav", "CC0-1.0", "earmark (sox)"),
    DemoSource("square_buzz", "synth", "synth/square_220_r.wav", "CC0-1.0", "earmark (sox)"),
)


def build_demo_sounds(cache_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the demo sounds and LICENSES.md into ``out_dir``; return the written audio paths."""
    cache, out = Path(cache_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    rows = ["# Demo sounds: sources and licences", "",
            "Short mono excerpts (≤ 6 s, Ogg Vorbis 44.1 kHz) rebuilt by",
            "`python -c 'from earmark.engine.training.demo_sounds import build_demo_sounds as b; "
            "b(\"/work/cache/earmark-corpus\", \"engine/demo_sounds\")'` after `earmark train-encoder` "
            "has filled the cache. Licences are those the Debian package's copyright file gives for "
            "the file; synthesised sounds are earmark's own (CC0-1.0).", "",
            "| file | source package | original file | licence | author |", "| --- | --- | --- | --- | --- |"]
    for src in DEMO_SOURCES:
        full = (cache / src.path) if src.package == "synth" else (cache / "x" / src.package / src.path)
        wave = load_mono(str(full), RATE)[: int(MAX_SECONDS * RATE)]
        peak = float(np.abs(wave).max()) or 1.0
        wave = (wave / peak * 0.9).astype(np.float32)  # peak-normalised so every demo is audible
        dest = out / f"{src.name}.ogg"
        sf.write(dest, wave, RATE, format="OGG", subtype="VORBIS")
        written.append(dest)
        orig = src.path if src.package == "synth" else "/" + src.path
        rows.append(f"| {dest.name} | {src.package} | {orig} | {src.licence} | {src.author} |")
    rows += ["", "CC-BY-SA-3.0+ files (Flare) may be redistributed with this attribution; adaptations",
             "must keep the same licence. CC-BY-3.0 files need this attribution kept."]
    (out / "LICENSES.md").write_text("\n".join(rows) + "\n")
    return written
