"""Procedural everyday sounds: rain, wind, fire, water, impacts, bells, birds ... synthesised in numpy.

The corpus has few sounds of many everyday categories (11 rain sounds, 6 thunder, 6 glass), all
from a handful of games, so a category's sounds from a new game do not lie near them. These
generators add physically motivated variants (after the models in Farnell, *Designing Sound*,
2010): textures as filtered noise under slow random modulation, impacts as sums of decaying
modes, liquids as rising-pitch bubbles, animal calls as formant-filtered harmonic glides. Every
parameter is drawn from a seeded generator, so the sounds are regenerated bit for bit and ship
no third-party content.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

SR = 44_100
Rng = np.random.Generator
# In the rendered files' names: bump it when a generator changes, so cached sounds (and the CNN
# features cached by their paths) are made anew instead of read back from the old generator.
VERSION = 2


# ---------------------------------------------------------------------------- building blocks

def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _noise(n: int, rng: Rng, colour: str = "white") -> np.ndarray:
    """White, pink (1/f power) or brown (1/f²) noise, unit standard deviation."""
    x = rng.standard_normal(n)
    if colour != "white":
        spec = np.fft.rfft(x)
        f = np.maximum(np.arange(len(spec)), 1.0)
        spec /= f ** (0.5 if colour == "pink" else 1.0)
        spec[:2] = 0.0  # no DC drift
        x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def _band(x: np.ndarray, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    """Butterworth high-pass at ``lo``, low-pass at ``hi`` or band-pass between them (Hz)."""
    nyq = SR / 2
    if lo and hi:
        sos = scipy.signal.butter(order, [lo / nyq, min(hi / nyq, 0.99)], "bandpass", output="sos")
    elif lo:
        sos = scipy.signal.butter(order, lo / nyq, "highpass", output="sos")
    else:
        sos = scipy.signal.butter(order, min(hi / nyq, 0.99), "lowpass", output="sos")
    return scipy.signal.sosfilt(sos, x)


def _smooth_random(n: int, rate_hz: float, rng: Rng) -> np.ndarray:
    """A slow random curve in [0, 1]: random points ``rate_hz`` apart, cubic-interpolated."""
    k = max(int(n / SR * rate_hz) + 4, 4)
    pts = rng.random(k)
    return np.clip(scipy.signal.resample(pts, n), 0.0, 1.0) if n > 0 else pts[:0]


def _sweeping_band(x: np.ndarray, centre: np.ndarray, q: float, block: int = 512) -> np.ndarray:
    """Band-pass ``x`` with a centre frequency that moves (one biquad per block, state carried)."""
    out = np.zeros_like(x)
    zi = np.zeros((1, 2))
    for s in range(0, len(x), block):
        f = float(np.clip(centre[s], 40.0, SR / 2.2))
        b, a = scipy.signal.iirpeak(f, q, fs=SR)
        sos = np.concatenate([b, a])[None]
        out[s : s + block], zi = scipy.signal.sosfilt(sos, x[s : s + block], zi=zi)
    return out


def _modes(seconds: float, freqs, decays, amps, rng: Rng) -> np.ndarray:
    """An impact: decaying sinusoids (modal synthesis) with random phases."""
    t = _t(seconds)
    out = np.zeros_like(t)
    for f, d, a in zip(freqs, decays, amps):
        if f < SR / 2.2:
            out += a * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def _click(seconds: float, rng: Rng, lo: float = 500.0, hi: float = 12_000.0, decay: float = 0.004) -> np.ndarray:
    """A short broadband transient."""
    t = _t(seconds)
    return _band(rng.standard_normal(len(t)) * np.exp(-t / decay), lo, hi)


def _place(out: np.ndarray, event: np.ndarray, at: float, gain: float = 1.0) -> None:
    """Add ``event`` into ``out`` starting at ``at`` seconds (cut at the end)."""
    s = int(at * SR)
    if s >= len(out):
        return
    e = event[: len(out) - s]
    out[s : s + len(e)] += gain * e


def _reverb(x: np.ndarray, rng: Rng, rt60: float, wet: float) -> np.ndarray:
    """A room: convolution with exponentially decaying noise."""
    t = _t(rt60)
    ir = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60)
    tail = scipy.signal.fftconvolve(x, ir / np.sqrt(np.sum(ir**2)))[: len(x)]
    return (1 - wet) * x + wet * tail * (np.std(x) / (np.std(tail) + 1e-12))


def _harmonic_glide(f0: np.ndarray, n_harm: int, tilt: float, rng: Rng, jitter: float = 0.0) -> np.ndarray:
    """A harmonic tone following the pitch curve ``f0`` (Hz per sample), partials rolling off by ``tilt``."""
    if jitter:
        f0 = f0 * (1 + jitter * _band(rng.standard_normal(len(f0)), None, 30.0) * 10)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out = np.zeros_like(f0)
    for k in range(1, n_harm + 1):
        partial = np.sin(k * phase)
        partial[k * f0 > SR / 2.2] = 0.0
        out += partial / k**tilt
    return out


def _formants(x: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """A vocal tract: parallel resonances (centre Hz, Q)."""
    out = np.zeros_like(x)
    for i, (f, q) in enumerate(formants):
        b, a = scipy.signal.iirpeak(f, q, fs=SR)
        out += scipy.signal.lfilter(b, a, x) / (i + 1) ** 0.5
    return out


def _envelope(n: int, attack: float, release: float) -> np.ndarray:
    """Linear rise over ``attack`` s, hold, fall over ``release`` s."""
    env = np.ones(n)
    a, r = min(int(attack * SR), n // 2), min(int(release * SR), n // 2)
    if a:
        env[:a] = np.linspace(0, 1, a)
    if r:
        env[-r:] *= np.linspace(1, 0, r)
    return env


# ---------------------------------------------------------------------------- textures

def rain(rng: Rng) -> np.ndarray:
    """A hiss of countless tiny drops, a few nearer drops and plinks; sometimes on a ringing roof.

    Rain is dense where fire is sparse: hundreds to thousands of soft grains a second, so it
    reads as a grainy hiss, not as separate pops."""
    n = int(4.0 * SR)
    level = 0.5 + 0.5 * _smooth_random(n, rng.uniform(0.2, 1.0), rng)  # showers come and go
    out = rng.uniform(0.2, 0.8) * _band(_noise(n, rng, "pink"), rng.uniform(300, 1000), rng.uniform(5000, 12000)) * level
    grains = np.zeros(n)
    idx = rng.integers(0, n, int(rng.uniform(500, 3000) * 4.0))
    np.add.at(grains, idx, rng.uniform(0.2, 1.0, len(idx)) * rng.choice([-1, 1], len(idx)))
    grain_kernel = np.exp(-_t(0.004) / rng.uniform(0.0005, 0.0015))
    out += 0.8 * _band(np.convolve(grains, grain_kernel)[:n], 1500, rng.uniform(7000, 14000)) * level
    rate = rng.uniform(5, 40)
    for at in np.cumsum(rng.exponential(1 / rate, int(rate * 4.5))):  # nearer, bigger drops
        if rng.random() < 0.5:
            ev = _bubble(rng, rng.uniform(1500, 5000), rng.uniform(0.004, 0.012))
        else:
            ev = _click(0.03, rng, 1000, 10_000, rng.uniform(0.002, 0.006))
        _place(out, ev, at, rng.uniform(0.2, 0.6))
    if rng.random() < 0.35:  # drops on a tin roof or a window: the surface rings
        fs = rng.uniform(300, 2500, 6)
        out = out + 0.6 * np.sum([_band(out, f * 0.97, f * 1.03) for f in fs], axis=0)
    return out


def wind(rng: Rng) -> np.ndarray:
    """Noise through a band-pass whose centre and level drift in gusts; high Q whistles."""
    n = int(4.0 * SR)
    gust = _smooth_random(n, rng.uniform(0.3, 1.2), rng)
    lo, hi = rng.uniform(150, 500), rng.uniform(700, 2500)
    centre = lo + (hi - lo) * gust
    q = rng.choice([rng.uniform(0.7, 2.0), rng.uniform(4.0, 20.0)])  # broad rush or a howl
    src = _noise(n, rng, rng.choice(["pink", "brown"]))
    out = _sweeping_band(src, centre, q) * (0.2 + 0.8 * gust**1.5)
    if rng.random() < 0.5:  # leaves and grit rustling with the gusts
        out = out + 0.2 * _band(_noise(n, rng), 2000, 8000) * gust**2
    return out


def fire(rng: Rng) -> np.ndarray:
    """A low roar, a hiss and crackles (sharp clicks in bursts) at random times."""
    n = int(4.0 * SR)
    roar = _band(_noise(n, rng, "brown"), 30, rng.uniform(200, 600)) * (0.5 + 0.5 * _smooth_random(n, 2.0, rng))
    hiss = 0.1 * _band(_noise(n, rng), 2000, 9000)
    out = rng.uniform(0.3, 1.0) * roar + rng.uniform(0.3, 1.5) * hiss
    rate = rng.uniform(6, 40)
    for at in np.cumsum(rng.exponential(1 / rate, int(rate * 4.5))):
        for k in range(rng.integers(1, 5)):  # a crackle is often a quick burst of pops
            ev = _click(0.02, rng, rng.uniform(600, 2500), 14_000, rng.uniform(0.0005, 0.003))
            _place(out, ev, at + k * rng.uniform(0.003, 0.02), rng.lognormal(0, 0.8) * 2.0)
    return out


def _bubble(rng: Rng, f0: float, decay: float) -> np.ndarray:
    """A bubble: a sine whose pitch rises as it decays (Minnaert resonance of a shrinking cavity)."""
    t = _t(decay * 6)
    f = f0 * (1 + rng.uniform(2, 12) * t / (decay * 6))
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / decay)


def running_water(rng: Rng) -> np.ndarray:
    """A brook: many bubbles of random size over a broadband wash."""
    n = int(4.0 * SR)
    out = rng.uniform(0.05, 0.3) * _band(_noise(n, rng), rng.uniform(300, 700), rng.uniform(3000, 8000))
    rate = rng.uniform(40, 300)
    lo, hi = rng.uniform(200, 800), rng.uniform(1500, 4000)
    for at in np.cumsum(rng.exponential(1 / rate, int(rate * 4.5))):
        f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        _place(out, _bubble(rng, f0, rng.uniform(0.005, 0.03)), at, rng.lognormal(0, 0.6) * 0.4)
    return out


def splash(rng: Rng) -> np.ndarray:
    """Something falls into water: a broadband slap, a burst of bubbles that thins out, droplets."""
    out = np.zeros(int(3.0 * SR))
    for _ in range(rng.integers(1, 3)):
        at = rng.uniform(0.05, 1.5)
        slap = _band(_noise(int(0.4 * SR), rng), rng.uniform(200, 600), rng.uniform(4000, 10000))
        _place(out, slap * np.exp(-_t(0.4) / rng.uniform(0.03, 0.12)), at, rng.uniform(0.6, 1.0))
        for b_at in at + rng.exponential(rng.uniform(0.08, 0.3), rng.integers(30, 120)):
            f0 = float(np.exp(rng.uniform(np.log(300), np.log(3000))))
            _place(out, _bubble(rng, f0, rng.uniform(0.004, 0.025)), b_at, rng.uniform(0.05, 0.3))
        for d_at in at + rng.uniform(0.2, 1.0, rng.integers(3, 15)):  # droplets falling back
            _place(out, _bubble(rng, rng.uniform(1500, 4500), 0.006), d_at, rng.uniform(0.05, 0.2))
    return _reverb(out, rng, rng.uniform(0.2, 1.0), 0.2)


def thunder(rng: Rng) -> np.ndarray:
    """A crack (when near), then overlapping low rumbles that swell and decay for seconds."""
    n = int(5.0 * SR)
    out = np.zeros(n)
    t = _t(5.0)
    rumble = _band(_noise(n, rng, "brown"), 20, rng.uniform(150, 500))
    env = np.zeros(n)
    for at in np.sort(rng.uniform(0, 1.5, rng.integers(3, 8))):
        d = rng.uniform(0.4, 2.0)
        env += rng.uniform(0.3, 1.0) * np.where(t >= at, np.exp(-(t - at) / d) * (1 - np.exp(-(t - at) / 0.05)), 0)
    out += rumble * env
    if rng.random() < 0.5:  # a near strike cracks first; brief, so the rumble still carries the energy
        _place(out, _click(0.3, rng, 100, 5000, rng.uniform(0.01, 0.05)), 0.0, rng.uniform(0.3, 1.0))
    return _reverb(out, rng, rng.uniform(1.5, 3.0), 0.4)


# ---------------------------------------------------------------------------- machines and blasts

def engine(rng: Rng) -> np.ndarray:
    """Cylinder firings (damped low bursts) at an idling or revving rate, through an exhaust resonance."""
    n = int(4.0 * SR)
    rate0 = rng.uniform(15, 70)
    rev = rate0 * (1 + rng.uniform(-0.3, 0.8) * _smooth_random(n, rng.uniform(0.2, 1.0), rng))
    out = np.zeros(n)
    at, burst_f = 0.0, rng.uniform(60, 250)
    while at < 4.0:
        ev = _modes(0.08, [burst_f, burst_f * 2.1], [0.01, 0.006], [1.0, 0.4], rng)
        ev += 0.5 * _click(0.08, rng, 100, 3000, rng.uniform(0.004, 0.01))
        _place(out, ev, at, rng.uniform(0.7, 1.0))
        at += 1.0 / rev[min(int(at * SR), n - 1)] * rng.uniform(0.97, 1.03)
    out = _band(out, 30, rng.uniform(800, 4000))
    if rng.random() < 0.5:  # intake and mechanical whine
        out += 0.1 * _band(_noise(n, rng), 1000, 6000)
    return np.tanh(out / (np.std(out) + 1e-9) * 0.6)


def explosion(rng: Rng) -> np.ndarray:
    """A saturated noise blast with a long low tail, a sub-bass boom and sometimes debris."""
    n = int(4.0 * SR)
    t = _t(4.0)
    body = _band(_noise(n, rng, "brown"), 20, rng.uniform(400, 2000)) * np.exp(-t / rng.uniform(0.4, 1.5))
    blast = _click(4.0, rng, 100, 10_000, rng.uniform(0.01, 0.05)) * rng.uniform(1, 3)
    f = rng.uniform(35, 80) * np.exp(-t / 1.0)
    boom = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / rng.uniform(0.3, 1.0)) * rng.uniform(0.5, 2)
    out = 2.0 * body + blast + boom
    if rng.random() < 0.5:  # debris falling
        for at in rng.uniform(0.3, 2.5, rng.integers(10, 50)):
            _place(out, _click(0.05, rng, 1000, 8000, 0.004), at, rng.uniform(0.05, 0.3))
    return _reverb(np.tanh(out * rng.uniform(1, 4)), rng, rng.uniform(0.8, 2.5), 0.35)


def _shot(rng: Rng, seconds: float = 0.6) -> np.ndarray:
    t = _t(seconds)
    crack = _click(seconds, rng, 200, rng.uniform(4000, 12000), rng.uniform(0.002, 0.01)) * 3
    body = _band(_noise(len(t), rng), 80, rng.uniform(1500, 5000)) * np.exp(-t / rng.uniform(0.02, 0.08))
    thump = np.sin(2 * np.pi * rng.uniform(60, 150) * t) * np.exp(-t / 0.03)
    return np.tanh((crack + body + thump) * rng.uniform(1, 3))


def gunshot(rng: Rng) -> np.ndarray:
    """One to three shots (a crack, a noise body, a thump) in a room or outdoors."""
    out = np.zeros(int(3.0 * SR))
    for k in range(rng.integers(1, 4)):
        _place(out, _shot(rng), 0.1 + k * rng.uniform(0.4, 0.9))
    return _reverb(out, rng, rng.uniform(0.3, 2.0), rng.uniform(0.2, 0.5))


def machine_gun(rng: Rng) -> np.ndarray:
    """A burst of shots 60–120 ms apart."""
    out = np.zeros(int(3.0 * SR))
    period, at = rng.uniform(0.06, 0.12), 0.1
    for _ in range(rng.integers(8, 25)):
        _place(out, _shot(rng, 0.3), at, rng.uniform(0.7, 1.0))
        at += period * rng.uniform(0.95, 1.05)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.3)


# ---------------------------------------------------------------------------- impacts

def footsteps(rng: Rng) -> np.ndarray:
    """Heel then toe, 1.5–3 steps a second, on gravel, wood, concrete, snow or grass."""
    surface = rng.choice(["gravel", "wood", "concrete", "snow", "grass", "metal"])
    out = np.zeros(int(4.0 * SR))
    rate = rng.uniform(1.5, 3.2)
    at = rng.uniform(0, 0.3)
    while at < 4.0:
        gain = rng.uniform(0.6, 1.0)
        for part, g in (("heel", 1.0), ("toe", rng.uniform(0.3, 0.7))):
            ev = _step(rng, surface)
            _place(out, ev, at + (0 if part == "heel" else rng.uniform(0.05, 0.12)), gain * g)
        at += 1.0 / rate * rng.uniform(0.92, 1.08)
    return _reverb(out, rng, rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.3))


def _step(rng: Rng, surface: str) -> np.ndarray:
    t = _t(0.25)
    thump = np.sin(2 * np.pi * rng.uniform(60, 140) * t) * np.exp(-t / 0.015)
    if surface in ("gravel", "snow", "grass"):  # many grains crunching over ~80 ms
        ev = np.zeros(len(t))
        lo, hi = {"gravel": (800, 8000), "snow": (300, 3000), "grass": (1500, 9000)}[surface]
        for at in rng.uniform(0, rng.uniform(0.05, 0.12), rng.integers(15, 60)):
            _place(ev, _click(0.01, rng, lo, hi, 0.0015), at, rng.uniform(0.1, 0.6))
        return ev + 0.3 * thump
    if surface == "wood":
        return 0.6 * _modes(0.25, rng.uniform(150, 900, 4), rng.uniform(0.01, 0.05, 4), rng.uniform(0.3, 1, 4), rng) + thump
    if surface == "metal":
        return 0.4 * _modes(0.25, rng.uniform(400, 3000, 5), rng.uniform(0.02, 0.1, 5), rng.uniform(0.2, 1, 5), rng) + thump
    return _click(0.25, rng, 200, 6000, rng.uniform(0.003, 0.01)) + 0.7 * thump  # concrete


def hammering(rng: Rng) -> np.ndarray:
    """Regular blows: a steel hammer on an anvil (ringing modes) or on a nail in wood (dull knock)."""
    anvil = rng.random() < 0.5
    out = np.zeros(int(4.0 * SR))
    rate, at = rng.uniform(1.2, 3.5), rng.uniform(0, 0.2)
    f0 = rng.uniform(300, 1500)
    while at < 4.0:
        if anvil:  # a free bar's mode ratios
            ev = _modes(1.0, f0 * np.array([1, 2.76, 5.40, 8.93]), rng.uniform(0.1, 0.6, 4), [1, 0.6, 0.4, 0.2], rng)
        else:
            ev = _modes(0.3, rng.uniform(150, 700, 3), rng.uniform(0.01, 0.04, 3), [1, 0.6, 0.4], rng)
            f0 *= 1.01  # the nail goes in, the pitch creeps up
        ev += _click(len(ev) / SR, rng, 500, 10_000, 0.002)
        _place(out, ev, at, rng.uniform(0.7, 1.0))
        at += 1.0 / rate * rng.uniform(0.9, 1.1)
    return _reverb(out, rng, rng.uniform(0.3, 1.2), 0.2)


def glass_breaking(rng: Rng) -> np.ndarray:
    """An impact, a bright crash, then shards: many short high inharmonic rings over ~1 s."""
    n = int(3.0 * SR)
    t = _t(3.0)
    out = _band(_noise(n, rng), 2000, 14_000) * np.exp(-t / rng.uniform(0.05, 0.2)) * 1.5
    out += _click(3.0, rng, 300, 12_000, 0.003) * 2
    for at in np.sort(rng.exponential(rng.uniform(0.1, 0.4), rng.integers(20, 80))):
        freqs = rng.uniform(2500, 12_000, 3)
        _place(out, _modes(0.3, freqs, rng.uniform(0.01, 0.08, 3), rng.uniform(0.3, 1, 3), rng), at,
               rng.uniform(0.1, 0.6) * np.exp(-at / 0.8))
    return _reverb(out, rng, rng.uniform(0.2, 1.0), 0.2)


def bell(rng: Rng) -> np.ndarray:
    """A church bell (hum, prime, minor-third tierce, quint, nominal partials) or a small hand bell, struck repeatedly."""
    church = rng.random() < 0.6
    nominal = rng.uniform(250, 700) if church else rng.uniform(900, 2500)
    ratios = np.array([0.25, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 2.0]) if church else np.array([1.0, 2.32, 4.25, 6.63])
    decays = (np.array([4.0, 3.0, 2.0, 1.5, 1.5, 1.0, 0.8, 0.5]) if church else np.array([1.2, 0.6, 0.3, 0.2]))
    decays = decays * rng.uniform(0.6, 1.3)
    out = np.zeros(int(5.0 * SR))
    period = rng.uniform(0.8, 2.0) if church else rng.uniform(0.2, 0.6)
    for at in np.arange(rng.uniform(0, 0.2), 4.5, period):
        ev = _modes(4.0, nominal * ratios * rng.uniform(0.995, 1.005, len(ratios)), decays,
                    rng.uniform(0.3, 1, len(ratios)), rng)
        _place(out, ev + 0.3 * _click(4.0, rng, 1000, 8000, 0.002), at, rng.uniform(0.8, 1.0))
    return _reverb(out, rng, rng.uniform(1.0, 3.0), 0.3)


def door_knock(rng: Rng) -> np.ndarray:
    """Two to five knocks on a wooden door (low wooden modes), once or twice."""
    out = np.zeros(int(3.0 * SR))
    freqs = rng.uniform(80, 500, 4)
    at = rng.uniform(0.1, 0.3)
    for _ in range(rng.integers(1, 3)):
        for _ in range(rng.integers(2, 6)):
            ev = _modes(0.3, freqs * rng.uniform(0.98, 1.02, 4), rng.uniform(0.02, 0.08, 4), [1, 0.7, 0.5, 0.3], rng)
            _place(out, ev + 0.4 * _click(0.3, rng, 300, 6000, 0.002), at, rng.uniform(0.7, 1.0))
            at += rng.uniform(0.12, 0.25)
        at += rng.uniform(0.4, 0.8)
    return _reverb(out, rng, rng.uniform(0.3, 1.0), 0.25)


def door_closing(rng: Rng) -> np.ndarray:
    """A door: a creak (a stick-slip buzz, sometimes), then the slam (low thump, panel modes, latch click)."""
    out = np.zeros(int(3.0 * SR))
    slam_at = 0.3
    if rng.random() < 0.6:  # creaking hinge: a rough pulse train with a wandering rate
        dur = rng.uniform(0.5, 1.5)
        n = int(dur * SR)
        rate = rng.uniform(30, 200) * (1 + 0.5 * _smooth_random(n, 3.0, rng))
        creak = _harmonic_glide(rate, 40, 0.6, rng, jitter=0.02)
        creak = _formants(creak, [(rng.uniform(500, 1500), 5), (rng.uniform(1500, 3500), 8)])
        _place(out, creak * _envelope(n, 0.1, 0.1), 0.1, 0.3)
        slam_at = 0.15 + dur
    t = _t(1.0)
    slam = np.sin(2 * np.pi * rng.uniform(50, 100) * t) * np.exp(-t / 0.06)
    slam += 0.7 * _modes(1.0, rng.uniform(100, 600, 4), rng.uniform(0.03, 0.15, 4), [1, 0.6, 0.4, 0.3], rng)
    slam += 0.5 * _click(1.0, rng, 500, 8000, 0.003)
    _place(out, slam, slam_at, 1.0)
    _place(out, _modes(0.2, rng.uniform(2000, 5000, 2), [0.02, 0.01], [1, 0.5], rng), slam_at + 0.03, 0.2)  # latch
    return _reverb(out, rng, rng.uniform(0.3, 1.2), 0.3)


def axe_chopping(rng: Rng) -> np.ndarray:
    """Chops a second or two apart: a sharp bite, a woody thunk, sometimes the split cracking."""
    out = np.zeros(int(4.0 * SR))
    at = rng.uniform(0.1, 0.4)
    log = rng.uniform(120, 500, 4)  # the log's modes stay from chop to chop
    while at < 4.0:
        ev = _modes(0.4, log * rng.uniform(0.95, 1.05, 4), rng.uniform(0.02, 0.08, 4), [1, 0.8, 0.5, 0.3], rng)
        ev += 1.5 * _click(0.4, rng, 800, 10_000, rng.uniform(0.002, 0.006))
        if rng.random() < 0.3:
            ev += 0.3 * _band(_noise(len(ev), rng), 1000, 6000) * np.exp(-_t(0.4) / 0.05)
        _place(out, ev, at, rng.uniform(0.7, 1.0))
        at += rng.uniform(0.8, 2.0)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.2)


def sword_clash(rng: Rng) -> np.ndarray:
    """Blades meeting: a bright impact, long high inharmonic rings with beating, a scrape."""
    out = np.zeros(int(3.0 * SR))
    at = rng.uniform(0.05, 0.3)
    for _ in range(rng.integers(1, 4)):
        f = rng.uniform(1200, 6000, 5)
        freqs = np.concatenate([f, f * rng.uniform(1.002, 1.01, 5)])  # close pairs beat like a blade
        ev = _modes(1.5, freqs, rng.uniform(0.1, 0.8, 10), rng.uniform(0.2, 1, 10), rng)
        ev += 2 * _click(1.5, rng, 1500, 14_000, 0.002)
        if rng.random() < 0.5:  # blade sliding along blade
            ev += 0.5 * _band(_noise(len(ev), rng), 2500, 9000) * np.exp(-_t(1.5) / rng.uniform(0.05, 0.3))
        _place(out, ev, at, rng.uniform(0.7, 1.0))
        at += rng.uniform(0.3, 1.0)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.2)


def whoosh(rng: Rng, seconds: float) -> np.ndarray:
    """Air moved fast: noise whose band sweeps down while its level swells and fades."""
    n = int(seconds * SR)
    hi, lo = rng.uniform(1500, 5000), rng.uniform(200, 900)
    centre = np.geomspace(hi, lo, n)
    bell_env = np.sin(np.linspace(0, np.pi, n)) ** rng.uniform(1.5, 4)
    return _sweeping_band(_noise(n, rng, "pink"), centre, rng.uniform(1.5, 5)) * bell_env


def sword_swing(rng: Rng) -> np.ndarray:
    """One to three swings through the air."""
    out = np.zeros(int(2.5 * SR))
    at = rng.uniform(0.05, 0.3)
    for _ in range(rng.integers(1, 4)):
        _place(out, whoosh(rng, rng.uniform(0.2, 0.5)), at, rng.uniform(0.6, 1.0))
        at += rng.uniform(0.4, 0.8)
    return out


def bow_and_arrow(rng: Rng) -> np.ndarray:
    """A plucked bowstring (Karplus-Strong) twang, then the arrow's whoosh and sometimes its thud."""
    out = np.zeros(int(2.5 * SR))
    f0 = rng.uniform(70, 220)
    period = int(SR / f0)
    buf = rng.uniform(-1, 1, period)
    string = np.zeros(int(0.6 * SR))
    damp = rng.uniform(0.990, 0.998)
    for i in range(len(string)):  # the classic plucked-string loop: average two neighbours, damp
        string[i] = buf[i % period]
        buf[i % period] = damp * 0.5 * (buf[i % period] + buf[(i + 1) % period])
    _place(out, string + 0.5 * _click(0.6, rng, 300, 6000, 0.003), 0.1, 1.0)
    fly = rng.uniform(0.25, 0.6)
    _place(out, whoosh(rng, fly), 0.12, rng.uniform(0.4, 0.9))
    if rng.random() < 0.5:  # into a target
        _place(out, _modes(0.3, rng.uniform(150, 600, 3), [0.03, 0.02, 0.01], [1, 0.6, 0.3], rng) + _click(0.3, rng),
               0.12 + fly, rng.uniform(0.5, 1.0))
    return out


# ---------------------------------------------------------------------------- animal calls

def birds(rng: Rng) -> np.ndarray:
    """Several birds: chirps (fast pitch sweeps, 2–7 kHz) and trills over a faint outdoor bed."""
    n = int(4.0 * SR)
    out = 0.02 * _band(_noise(n, rng, "pink"), 200, 4000)
    for _ in range(rng.integers(1, 4)):
        base = rng.uniform(2000, 6000)
        at = rng.uniform(0, 1.0)
        while at < 4.0:
            for _ in range(rng.integers(1, 8)):  # a phrase of syllables
                dur = rng.uniform(0.02, 0.12)
                m = int(dur * SR)
                sweep = base * np.geomspace(1, rng.uniform(0.6, 1.6), m) * (1 + 0.05 * np.sin(
                    2 * np.pi * rng.uniform(20, 80) * np.arange(m) / SR))
                syl = np.sin(2 * np.pi * np.cumsum(sweep) / SR) * np.hanning(m)
                _place(out, syl, at, rng.uniform(0.2, 0.6))
                at += dur + rng.uniform(0.01, 0.08)
            at += rng.uniform(0.2, 1.2)
    return _reverb(out, rng, rng.uniform(0.3, 1.0), 0.2)


def _call(rng: Rng, seconds: float, f_curve: np.ndarray, formants: list[tuple[float, float]],
          breath: float, n_harm: int = 30, tilt: float = 1.0) -> np.ndarray:
    """A voiced call: a harmonic glide with jitter, shaped by formants, with breath noise."""
    n = int(seconds * SR)
    f0 = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(f_curve)), f_curve)
    voice = _harmonic_glide(f0, n_harm, tilt, rng, jitter=rng.uniform(0.002, 0.01))
    voice = _formants(voice, formants) + breath * _band(_noise(n, rng), 500, 6000)
    return voice * _envelope(n, rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.4))


def wolf_howl(rng: Rng) -> np.ndarray:
    """A howl: a smooth rise, a long held pitch with vibrato, a fall (300–800 Hz)."""
    out = np.zeros(int(4.5 * SR))
    lo, hi = rng.uniform(250, 400), rng.uniform(500, 800)
    dur = rng.uniform(2.0, 4.0)
    curve = np.array([lo, hi, hi * rng.uniform(0.95, 1.05), hi * rng.uniform(0.9, 1.0), lo * rng.uniform(0.7, 1.0)])
    curve = curve * (1 + 0.01 * np.sin(np.linspace(0, 2 * np.pi * 5 * dur, len(curve))))
    _place(out, _call(rng, dur, curve, [(hi * 1.1, 4), (2 * hi, 6)], 0.05, 8, 1.5), 0.2)
    return _reverb(out, rng, rng.uniform(1.0, 2.5), 0.35)


def cow_moo(rng: Rng) -> np.ndarray:
    """A moo: a low buzzy voice (90–170 Hz) opening from 'mm' to 'oo', pitch rising then falling."""
    f = rng.uniform(90, 170)
    dur = rng.uniform(1.2, 2.5)
    curve = np.array([f * 0.9, f * 1.15, f * 1.1, f * 0.85])
    n = int(dur * SR)
    f1 = np.geomspace(250, rng.uniform(500, 800), n)  # the mouth opens: the first formant rises
    voice = _harmonic_glide(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, 4), curve), 60, 0.8, rng, 0.01)
    voice = _sweeping_band(voice, f1, 3) + 0.4 * _formants(voice, [(1200, 5), (2500, 6)])
    out = np.zeros(int(3.0 * SR))
    _place(out, voice * _envelope(n, 0.15, 0.4), 0.2)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.2)


def sheep_bleat(rng: Rng) -> np.ndarray:
    """A bleat: a hoarse nasal voice (200–450 Hz) whose pitch and level both shake ('baa-a-a')."""
    dur = rng.uniform(0.5, 1.3)
    f = rng.uniform(200, 450)
    n = int(dur * SR)
    shake = np.sin(2 * np.pi * rng.uniform(5, 10) * np.arange(n) / SR)
    f0 = f * np.interp(np.linspace(0, 1, n), [0, 0.2, 1], [0.9, 1.05, 0.95]) * (1 + rng.uniform(0.03, 0.08) * shake)
    voice = _harmonic_glide(f0, 30, 0.7, rng, jitter=rng.uniform(0.01, 0.03))
    voice = _formants(voice, [(rng.uniform(600, 900), 4), (rng.uniform(1600, 2200), 6), (2800, 8)])
    voice += rng.uniform(0.2, 0.6) * np.std(voice) * _band(_noise(n, rng), 800, 5000)  # hoarse breath
    call = voice * (1 - rng.uniform(0.3, 0.6) * (0.5 + 0.5 * shake)) * _envelope(n, 0.05, 0.2)
    out = np.zeros(int(3.0 * SR))
    at = rng.uniform(0.1, 0.4)
    while at < 2.6:
        _place(out, call, at, rng.uniform(0.7, 1.0))
        at += dur + rng.uniform(0.3, 1.2)
    return _reverb(out, rng, rng.uniform(0.3, 1.0), 0.2)


def dog_bark(rng: Rng) -> np.ndarray:
    """Barks: short (~0.15 s) harsh calls, pitch falling, with noise, in twos and threes."""
    out = np.zeros(int(3.0 * SR))
    f = rng.uniform(250, 700)
    at = rng.uniform(0.05, 0.3)
    for _ in range(rng.integers(2, 6)):
        dur = rng.uniform(0.08, 0.2)
        call = _call(rng, dur, np.array([f * 1.3, f, f * 0.8]), [(rng.uniform(600, 1100), 3), (2000, 4)], 0.5, 25, 0.7)
        _place(out, np.tanh(call * 3), at)
        at += dur + rng.uniform(0.1, 0.5)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.25)


def chicken_cluck(rng: Rng) -> np.ndarray:
    """Clucks: short nasal bursts (300–600 Hz) in an uneven rhythm, sometimes a drawn-out 'b-gawk'."""
    out = np.zeros(int(3.0 * SR))
    f = rng.uniform(300, 600)
    at = rng.uniform(0.05, 0.3)
    while at < 2.8:
        long = rng.random() < 0.15
        dur = rng.uniform(0.3, 0.6) if long else rng.uniform(0.04, 0.1)
        curve = np.array([f, f * 1.6, f * 1.3]) if long else np.array([f * 1.1, f])
        _place(out, _call(rng, dur, curve, [(1000, 4), (2200, 6)], 0.3, 20, 0.8), at, rng.uniform(0.6, 1.0))
        at += dur + rng.uniform(0.08, 0.4)
    return _reverb(out, rng, rng.uniform(0.2, 0.8), 0.15)


def scream(rng: Rng) -> np.ndarray:
    """A scream: a strained high voice ('aah', 500–1100 Hz) with rough jitter and a falling end."""
    dur = rng.uniform(0.6, 2.0)
    f = rng.uniform(450, 1100)
    curve = np.array([f * 0.8, f * 1.1, f, f * rng.uniform(0.6, 0.9)])
    formants = [(rng.uniform(700, 1000), 4), (rng.uniform(1100, 1500), 5), (rng.uniform(2400, 3000), 6)]
    call = _call(rng, dur, curve, formants, rng.uniform(0.1, 0.4), 20, 0.6)
    out = np.zeros(int(2.5 * SR))
    _place(out, np.tanh(call * rng.uniform(1, 4)), rng.uniform(0.05, 0.3))
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.2)


def horse_neigh(rng: Rng) -> np.ndarray:
    """A whinny: a high voice (600–1000 Hz) with a fast shake, sliding down, ending in a low
    pulsed nicker; sometimes a snort first."""
    out = np.zeros(int(3.5 * SR))
    at = rng.uniform(0.05, 0.3)
    if rng.random() < 0.5:  # a snort: a burst of breath through the nose
        n = int(rng.uniform(0.15, 0.35) * SR)
        _place(out, _band(_noise(n, rng), 150, 2500) * _envelope(n, 0.01, 0.15), at, 0.5)
        at += n / SR + rng.uniform(0.1, 0.4)
    dur = rng.uniform(1.0, 1.8)
    n = int(dur * SR)
    top = rng.uniform(600, 1000)
    f0 = top * np.interp(np.linspace(0, 1, n), [0, 0.15, 0.7, 1], [0.8, 1.0, 0.6, 0.35])
    f0 = f0 * (1 + rng.uniform(0.04, 0.1) * np.sin(2 * np.pi * rng.uniform(8, 14) * np.arange(n) / SR))
    voice = _harmonic_glide(f0, 15, 0.9, rng, jitter=rng.uniform(0.005, 0.02))
    voice = _formants(voice, [(rng.uniform(900, 1300), 3), (rng.uniform(2000, 2800), 5)])
    voice += 0.3 * np.std(voice) * _band(_noise(n, rng), 1000, 6000)  # breath through it
    # The end: the pitch has fallen into low pulses (a nicker, ~10 per second).
    pulses = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(8, 12) * np.arange(n) / SR))
    voice *= np.where(np.linspace(0, 1, n) > 0.7, pulses, 1.0) * _envelope(n, 0.05, 0.3)
    _place(out, voice, at)
    return _reverb(out, rng, rng.uniform(0.3, 1.5), 0.25)


def horse_hooves(rng: Rng) -> np.ndarray:
    """Hooves: a two-beat trot or a three-beat canter rhythm of hollow knocks on stone or earth."""
    stone = rng.random() < 0.5
    gait = rng.choice(["trot", "canter"])
    out = np.zeros(int(4.0 * SR))
    stride = rng.uniform(0.45, 0.7) if gait == "trot" else rng.uniform(0.35, 0.5)
    beats = [0.0, 0.5] if gait == "trot" else [0.0, 0.22, 0.44]
    at = rng.uniform(0, 0.2)
    while at < 4.0:
        for b in beats:
            if stone:  # a hard shoe on cobbles: bright hollow clop
                ev = _modes(0.15, rng.uniform(500, 2500, 3), rng.uniform(0.005, 0.02, 3), [1, 0.6, 0.4], rng)
                ev += _click(0.15, rng, 1000, 10_000, 0.002)
            else:  # earth: a dull thud
                t = _t(0.15)
                ev = np.sin(2 * np.pi * rng.uniform(70, 150) * t) * np.exp(-t / 0.02)
                ev += 0.3 * _click(0.15, rng, 200, 2500, 0.006)
            _place(out, ev, at + b * stride * rng.uniform(0.95, 1.05), rng.uniform(0.6, 1.0))
        at += stride * rng.uniform(0.95, 1.05)
    return _reverb(out, rng, rng.uniform(0.2, 1.0), rng.uniform(0.1, 0.3))


def pig_oink(rng: Rng) -> np.ndarray:
    """Grunts: short low nasal calls (80–200 Hz) with a rough, pulsed voice; sometimes a squeal."""
    out = np.zeros(int(3.0 * SR))
    f = rng.uniform(80, 200)
    at = rng.uniform(0.05, 0.3)
    while at < 2.7:
        squeal = rng.random() < 0.06  # about one sound in four has a squeal: high, harsh, up to a second
        if squeal:
            dur = rng.uniform(0.4, 1.0)
            g = rng.uniform(700, 1400)
            call = _call(rng, dur, np.array([g * 0.8, g, g * 1.05, g * 0.85]),
                         [(rng.uniform(1200, 1800), 4), (3000, 5)], 0.4, 12, 0.6)
            call = np.tanh(call * 4)
        else:
            dur = rng.uniform(0.12, 0.35)
            call = _call(rng, dur, np.array([f * 0.9, f * 1.2, f]), [(rng.uniform(400, 700), 3),
                         (rng.uniform(1400, 1900), 5)], 0.3, 40, 0.7)
            n = len(call)  # creaky voice: the glottis flaps at a slow, uneven rate
            rough = 0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(rng.uniform(25, 45, n)) / SR)
            call = np.tanh(call * rough * 3)
        _place(out, call, at, rng.uniform(0.6, 1.0) * (0.6 if squeal else 1.0))
        at += dur + rng.uniform(0.1, 0.6)
    return _reverb(out, rng, rng.uniform(0.2, 0.8), 0.15)


def laughter(rng: Rng) -> np.ndarray:
    """Laughing: 'ha-ha-ha' bouts, breathy onsets on an open vowel, four to six a second, pitch and
    loudness falling through the bout; one to three people."""
    out = np.zeros(int(3.5 * SR))
    for _ in range(rng.integers(1, 4)):
        f = rng.uniform(110, 190) if rng.random() < 0.5 else rng.uniform(200, 350)
        formants = [(rng.uniform(700, 950), 4), (rng.uniform(1100, 1400), 5), (rng.uniform(2400, 2900), 7)]
        at = rng.uniform(0, 0.8)
        syllables = rng.integers(4, 11)
        period = 1.0 / rng.uniform(4.0, 6.0)
        for k in range(syllables):
            fall = 1 - 0.4 * k / syllables
            dur = period * rng.uniform(0.45, 0.7)
            n = int(dur * SR)
            voice = _call(rng, dur, np.array([f * 1.1, f]) * fall, formants, 0.2, 25, 0.8)
            h = _formants(_noise(n, rng), formants) * np.exp(-np.arange(n) / (0.03 * SR))  # the 'h'
            _place(out, (voice + 0.5 * np.std(voice) * h) * fall, at)
            at += period * rng.uniform(0.9, 1.1)
    return _reverb(out, rng, rng.uniform(0.3, 1.0), 0.2)


def cat_meow(rng: Rng) -> np.ndarray:
    """A meow: a voice arching up and down (400–900 Hz) while the mouth opens ('mi-a') and closes
    ('-ow'): the first formant rises then falls, the second falls."""
    out = np.zeros(int(3.0 * SR))
    at = rng.uniform(0.05, 0.4)
    for _ in range(rng.integers(1, 3)):
        dur = rng.uniform(0.5, 1.2)
        n = int(dur * SR)
        f = rng.uniform(400, 900)
        f0 = f * np.interp(np.linspace(0, 1, n), [0, 0.35, 1], [0.85, 1.1, 0.75])
        voice = _harmonic_glide(f0, 12, 0.8, rng, jitter=rng.uniform(0.003, 0.01))
        shape = np.interp(np.linspace(0, 1, n), [0, 0.4, 1], [0.0, 1.0, 0.2])  # closed, open, rounded
        f1 = 400 + shape * rng.uniform(500, 800)
        f2 = np.interp(np.linspace(0, 1, n), [0, 0.4, 1], [2200, 1600, 900])
        call = (_sweeping_band(voice, f1, 4) + 0.6 * _sweeping_band(voice, f2, 6)) * _envelope(n, 0.08, 0.2)
        _place(out, call, at)
        at += dur + rng.uniform(0.3, 0.9)
    return _reverb(out, rng, rng.uniform(0.2, 1.0), 0.2)


# ---------------------------------------------------------------------------- the catalogue

# generator, corpus label (worded like the packages' labels, so captions and categories follow)
GENERATORS: dict[str, tuple[Callable[[Rng], np.ndarray], str]] = {
    "rain": (rain, "rain"),
    "wind": (wind, "wind blowing"),
    "fire": (fire, "fire crackling"),
    "water": (running_water, "a stream of running water"),
    "splash": (splash, "a splash of water"),
    "thunder": (thunder, "thunder"),
    "engine": (engine, "an engine running"),
    "explosion": (explosion, "an explosion"),
    "gunshot": (gunshot, "a gunshot"),
    "machine_gun": (machine_gun, "machine gun fire"),
    "footsteps": (footsteps, "footsteps"),
    "hammering": (hammering, "hammering"),
    "glass": (glass_breaking, "glass breaking"),
    "bell": (bell, "a bell ringing"),
    "knock": (door_knock, "knocking on a door"),
    "door": (door_closing, "a door opening and closing"),
    "axe": (axe_chopping, "an axe chopping wood"),
    "sword_clash": (sword_clash, "a sword clashing"),
    "sword_swing": (sword_swing, "a sword swinging"),
    "arrow": (bow_and_arrow, "a bow shooting an arrow"),
    "birds": (birds, "birds chirping"),
    "wolf": (wolf_howl, "a wolf howling"),
    "cow": (cow_moo, "a cow mooing"),
    "sheep": (sheep_bleat, "sheep bleating"),
    "dog": (dog_bark, "a dog barking"),
    "chicken": (chicken_cluck, "a chicken clucking"),
    "scream": (scream, "a person screaming"),
    # Added for encoder v9 (the same VERSION: the generators above render as they did for v8).
    "horse": (horse_neigh, "a horse neighing"),
    "hooves": (horse_hooves, "horse hooves galloping"),
    "pig": (pig_oink, "a pig oinking"),
    "laughter": (laughter, "laughter"),
    "cat": (cat_meow, "a cat meowing"),
}


# The 27 generators encoder v8 was trained with (the ones after them came with v9).
V8_GENERATORS: tuple[str, ...] = tuple(GENERATORS)[:27]


def render(name: str, index: int, seed: int = 0) -> np.ndarray:
    """Variant ``index`` of generator ``name``: float32 at :data:`SR`, peak 0.9."""
    gen, _ = GENERATORS[name]
    rng = np.random.default_rng([seed, index, sum(map(ord, name))])
    x = np.nan_to_num(gen(rng))
    peak = np.abs(x).max()
    return (x / peak * 0.9 if peak > 0 else x).astype(np.float32)


def write_procedural(out_dir: Path, variants: int, seed: int = 0,
                     names: tuple[str, ...] | None = None) -> list[tuple[Path, str]]:
    """Render ``variants`` sounds of each generator in ``names`` (default: all, in catalogue order)
    into ``out_dir`` (kept if present); (path, label) each."""
    unknown = set(names or ()) - set(GENERATORS)
    if unknown:
        raise ValueError(f"no procedural generator named {', '.join(sorted(unknown))}; known: {', '.join(GENERATORS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for name, (_, label) in GENERATORS.items():
        if names is not None and name not in names:
            continue
        for i in range(variants):
            path = out_dir / f"{name}_v{VERSION}_{seed}_{i:03d}.wav"
            if not path.exists():
                tmp = path.with_suffix(".tmp.wav")
                sf.write(tmp, render(name, i, seed), SR, subtype="PCM_16")
                tmp.replace(path)  # atomic: an interrupted run leaves no half-written sound
            made.append((path, label))
    return made
