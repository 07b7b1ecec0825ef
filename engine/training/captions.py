"""Captions for training sounds, made from folder names, file names and descriptions.

Raw file names ("MgBar1", "bd_klub", "swordman_attack7") make poor captions: they hold game
unit names, numbering and abbreviations. This module turns a path into one *label* (an
AudioSet-style phrase such as "footsteps on gravel" or "male speech, man speaking") by

1. package rules for voice lines and music (recognised by folder, captioned by what they are,
   never by their file names),
2. a keyword table over the cleaned tokens of the path (abbreviations expanded: bd → bass drum,
   chh → closed hi-hat, expl → explosion; numbering and game unit names dropped),

and then expands the label into several caption templates. Pure string code, no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Caption templates: a label is written several ways so the text tower sees varied wording;
# at query time the same templates are averaged (prompt ensembling).
TEMPLATES: tuple[str, ...] = (
    "{}",
    "the sound of {}",
    "a recording of {}",
    "{} sound effect",
    "this is a sound of {}",
)

# Abbreviations and spellings seen in the allowed packages, expanded before keyword lookup.
ABBREVIATIONS: dict[str, str] = {
    "bd": "bass drum",
    "kick": "kick drum",
    "sd": "snare",
    "sn": "snare",
    "hh": "hi-hat",
    "chh": "closed hi-hat",
    "ohh": "open hi-hat",
    "hat": "hi-hat",
    "hihat": "hi-hat",
    "cym": "cymbal",
    "perc": "percussion",
    "mg": "machine gun",
    "expl": "explosion",
    "lrg": "large",
    "sml": "small",
    "can": "cannon",
    "lrgexpl": "large explosion",
    "smlexpl": "small explosion",
    "medexpl": "explosion",
    "mgbar": "machine gun",
    "explsn": "explosion",
    "h2o": "water",
    "inh2o": "water",
    "guit": "guitar",
    "elec": "electronic",
    "ambi": "ambient",
    "trafic": "traffic",
    "sfx": "",
    "wp": "",
    "snd": "",
}

# token (or two-token phrase) → AudioSet-style label. Checked on cleaned, expanded tokens.
KEYWORDS: dict[str, str] = {
    # weather and nature
    "rain": "rain", "thunder": "thunder", "lightning": "thunder", "wind": "wind blowing",
    "storm": "thunderstorm", "waterfall": "waterfall", "river": "a stream of running water",
    "stream": "a stream of running water", "water": "water", "splash": "a splash of water",
    "droplet": "water dripping", "droplets": "water dripping", "drip": "water dripping",
    "bubble": "bubbles", "bubbles": "bubbles", "lava": "bubbling lava", "ocean": "ocean waves",
    "waves": "ocean waves", "sea": "ocean waves", "fire": "fire crackling", "flame": "fire crackling",
    "burn": "fire crackling", "crackle": "fire crackling", "campfire": "fire crackling",
    "sizzle": "sizzling", "steam": "steam hissing", "fizz": "fizzing",
    # animals
    "horse": "a horse neighing", "gallop": "horse hooves galloping", "cow": "a cow mooing",
    "bull": "a bull bellowing", "cattle": "a cow mooing", "ox": "a cow mooing", "moo": "a cow mooing",
    "sheep": "sheep bleating", "goat": "a goat bleating", "pig": "a pig oinking",
    "dog": "a dog barking", "bark": "a dog barking", "puppy": "a dog barking", "wolf": "a wolf howling",
    "cat": "a cat meowing", "meow": "a cat meowing", "kitten": "a cat meowing", "lion": "a lion roaring",
    "tiger": "a big cat roaring", "bear": "a bear growling", "elephant": "an elephant trumpeting",
    "ele": "an elephant trumpeting", "monkey": "a monkey chattering", "bird": "birds chirping",
    "birds": "birds chirping", "twitter": "birds chirping", "chirp": "birds chirping",
    "crow": "a crow cawing", "raven": "a crow cawing", "owl": "an owl hooting", "hawk": "a hawk screeching",
    "eagle": "a hawk screeching", "rooster": "a rooster crowing", "chicken": "a chicken clucking",
    "hen": "a chicken clucking", "duck": "a duck quacking", "goose": "a goose honking",
    "seagull": "seagulls", "gull": "seagulls", "bee": "a bee buzzing", "bees": "a bee buzzing",
    "fly": "a fly buzzing", "mosquito": "a mosquito buzzing", "cricket": "crickets chirping",
    "crickets": "crickets chirping", "frog": "a frog croaking", "snake": "a snake hissing",
    "whale": "whale song", "dolphin": "a dolphin clicking", "donkey": "a donkey braying",
    "mouse": "a mouse squeaking", "dinosaur": "a monster roaring", "dragon": "a dragon roaring",
    "monster": "a monster growling", "growl": "a monster growling", "roar": "a monster roaring",
    "yeti": "a monster roaring", "zombie": "a zombie groaning", "howl": "a wolf howling",
    # people
    "footstep": "footsteps", "footsteps": "footsteps", "step": "footsteps", "steps": "footsteps",
    "foot": "footsteps", "walk": "footsteps", "stairs": "footsteps on stairs", "run": "running footsteps",
    "scream": "a person screaming", "yell": "a person shouting", "shout": "a person shouting",
    "cough": "a person coughing", "sneeze": "a person sneezing", "laugh": "laughter",
    "laughing": "laughter", "giggle": "laughter", "cry": "a person crying", "crying": "a person crying",
    "baby": "a baby crying", "kiss": "a kiss", "clap": "hands clapping", "applause": "applause",
    "cheer": "a crowd cheering", "crowd": "a crowd", "whistle": "whistling", "snore": "snoring",
    "breath": "breathing", "breathing": "breathing", "heartbeat": "a heartbeat",
    "gulp": "a gulp, swallowing", "burp": "a burp", "sing": "singing", "singer": "singing",
    "grunt": "a grunt", "grunts": "a grunt", "hurt": "a cry of pain", "ouch": "a cry of pain",
    "pain": "a cry of pain", "die": "a death scream", "death": "a death scream",
    "chant": "chanting", "chewing": "chewing", "eat": "chewing",
    # weapons and combat
    "sword": "a sword clashing", "swords": "a sword clashing", "blade": "a sword clashing",
    "knife": "a knife stabbing", "axe": "an axe chopping wood", "chop": "an axe chopping wood",
    "arrow": "an arrow flying", "bow": "a bow shooting an arrow", "crossbow": "a bow shooting an arrow",
    "spear": "a spear thrust", "gun": "a gunshot", "gunshot": "a gunshot", "shot": "a gunshot",
    "shoot": "a gunshot", "pistol": "a gunshot", "rifle": "a gunshot", "shotgun": "a shotgun firing",
    "shotgunfire": "a shotgun firing", "machine gun": "machine gun fire", "minigun": "machine gun fire",
    "cannon": "a cannon firing", "mortar": "a cannon firing", "explosion": "an explosion",
    "explode": "an explosion", "bomb": "an explosion", "grenade": "an explosion",
    "blast": "an explosion", "firecracker": "firecrackers", "fireworks": "fireworks",
    "laser": "a laser zap", "punch": "a punch", "hit": "an impact, a hit", "impact": "an impact, a hit",
    "thud": "a thud", "hammer": "a hammer hitting", "anvil": "a hammer striking an anvil",
    "reload": "a gun being reloaded", "armor": "clanking metal armour", "shield": "a metal clang",
    "catapult": "a catapult launching", "magic": "a magic spell", "spell": "a magic spell",
    "teleport": "a magic spell", "teleporter": "a magic spell", "warcry": "a war cry",
    # vehicles and machines
    "car": "a car engine", "engine": "an engine running", "motor": "an engine running",
    "truck": "a truck engine", "firetruck": "a siren", "siren": "a siren", "ambulance": "a siren",
    "police": "a siren", "train": "a train", "plane": "an airplane flying", "airplane": "an airplane flying",
    "jet": "a jet engine", "helicopter": "a helicopter", "rocket": "a rocket launch",
    "boat": "a boat engine", "ship": "a ship horn", "horn": "a horn honking", "bicycle": "a bicycle bell",
    "traffic": "traffic noise", "tread": "tank treads rolling", "tank": "tank treads rolling",
    "drill": "a power drill", "drillgun": "a power drill", "saw": "a saw cutting",
    "chainsaw": "a chainsaw", "blowtorch": "a blowtorch", "jetpack": "a jet engine",
    "jetpackboost": "a jet engine", "machine": "machinery", "mill": "machinery",
    "industry": "industrial machinery", "mine": "a pickaxe digging", "dig": "digging",
    "dug": "digging", "digger": "digging", "pickaxe": "a pickaxe digging", "pickhammer": "a jackhammer",
    "cart": "a cart rolling", "clock": "a clock ticking", "tick": "a clock ticking",
    "ticking": "a clock ticking", "typewriter": "a typewriter typing", "keyboard": "typing on a keyboard",
    "camera": "a camera shutter", "shutter": "a camera shutter", "shutterclick": "a camera shutter",
    "phone": "a telephone ringing", "telephone": "a telephone ringing", "ring": "a telephone ringing",
    "alarm": "an alarm", "buzzer": "a buzzer", "computer": "computer beeps", "robot": "a robot",
    "vacuum": "a vacuum cleaner", "blender": "a blender", "microwave": "a microwave beeping",
    "toilet": "a toilet flushing", "zipper": "a zipper",
    # objects and materials
    "door": "a door opening and closing", "knock": "knocking on a door", "window": "a window opening",
    "glass": "glass breaking", "shatter": "glass breaking", "break": "something breaking",
    "breaks": "something breaking", "crash": "a crash", "wood": "a wooden knock",
    "metal": "metal clanging", "coin": "coins jingling", "coins": "coins jingling", "money": "coins jingling",
    "bell": "a bell ringing", "bells": "a bell ringing", "chime": "a chime", "gong": "a gong",
    "paper": "paper rustling", "page": "a page turning", "book": "a book", "cloth": "cloth rustling",
    "leather": "leather creaking", "chain": "chains rattling", "rattle": "a rattle",
    "key": "keys jangling", "keys": "keys jangling", "lock": "a lock clicking", "locked": "a lock clicking",
    "switch": "a switch clicking", "click": "a click", "pop": "a pop", "plop": "a plop",
    "squeak": "a squeak", "creak": "a creak", "rubber": "a rubber squeak", "spring": "a boing",
    "boing": "a boing", "trampoline": "a boing", "swoosh": "a whoosh", "whoosh": "a whoosh",
    "zoop": "a whoosh", "slide": "sliding", "skid": "tyres skidding", "brick": "bricks breaking",
    "stone": "stones scraping", "rock": "rocks falling", "gravel": "gravel crunching",
    "snow": "snow crunching", "sand": "sand", "grass": "rustling grass", "leaves": "leaves rustling",
    "ice": "ice cracking", "cracking": "cracking", "splat": "a splat", "squish": "a squish",
    "potion": "liquid pouring", "pour": "liquid pouring", "drink": "drinking",
    "balloon": "a balloon popping", "cork": "a cork popping", "tools": "tools",
    # music and instruments
    "piano": "piano", "guitar": "guitar", "bass": "bass guitar", "violin": "violin",
    "cello": "cello", "string": "string instruments", "strings": "string instruments",
    "trumpet": "trumpet", "trombone": "trombone", "saxophone": "saxophone", "sax": "saxophone",
    "flute": "flute", "clarinet": "clarinet", "harp": "harp", "organ": "organ",
    "accordion": "accordion", "harmonica": "harmonica", "xylophone": "xylophone",
    "marimba": "marimba", "glockenspiel": "glockenspiel", "vibraphone": "vibraphone",
    "synth": "a synthesizer", "synthesizer": "a synthesizer", "pad": "a synthesizer pad",
    "drum": "a drum", "drums": "a drum kit", "bass drum": "a bass drum hit",
    "kick drum": "a kick drum hit", "snare": "a snare drum hit", "tom": "a tom drum hit",
    "hi-hat": "a hi-hat", "closed hi-hat": "a closed hi-hat", "open hi-hat": "an open hi-hat",
    "cymbal": "a cymbal crash", "ride": "a ride cymbal", "crash cymbal": "a cymbal crash",
    "cymbal crash": "a cymbal crash", "drum splash": "a splash cymbal",
    "tabla": "tabla drums", "conga": "conga drums", "bongo": "bongo drums", "djembe": "djembe drum",
    "cowbell": "a cowbell", "tambourine": "a tambourine", "shaker": "a shaker",
    "triangle": "a triangle", "woodblock": "a wood block", "clave": "claves", "claves": "claves",
    "timpani": "timpani", "gamelan": "gamelan", "sitar": "sitar", "banjo": "banjo",
    "percussion": "percussion", "beat": "a drum beat", "beats": "a drum beat",
    "loop": "a music loop", "choir": "a choir singing", "vocal": "singing", "vinyl": "vinyl record scratching",
    "scratch": "scratching", "glitch": "glitchy electronic noise", "noise": "noise",
    "static": "static noise", "hum": "electrical hum", "buzz": "buzzing", "beep": "a beep",
    "beeps": "beeps", "blip": "a blip", "ding": "a ding", "tada": "a fanfare", "fanfare": "a fanfare",
    "sine": "a sine wave tone", "square": "a square wave tone", "saw wave": "a sawtooth wave tone",
    "tone": "a tone",
    "fan": "a fan whirring", "drone": "a low drone", "pump": "machinery", "machinegun": "machine gun fire",
    "vulcan": "machine gun fire", "plasma": "a laser zap", "railgun": "a laser zap",
    "electro": "electric zapping", "electric": "electric zapping", "zap": "electric zapping",
    "hover": "a hovercraft engine", "hovstart": "a hovercraft engine", "splsh": "a splash of water",
    "rumble": "a low rumble", "quake": "an earthquake rumble", "gate": "a gate creaking",
    "fencegate": "a gate creaking", "wolfhowl": "a wolf howling", "helicopt": "a helicopter",
}

# Packages whose folders mark music or voice lines (checked before keywords).
MUSIC_DIRS = ("music", "musics", "soundtrack", "songs")
VOICE_DIRS = ("voices", "voice", "npcs", "speech", "vocals")
MUSIC_WORDS = ("music", "theme", "mainzik", "song", "soundtrack", "intro_music", "remix")

MUSIC_LABELS = ("instrumental music", "background music for a game", "a piece of music")

# Megaglest-style unit actions: voice responses and deaths are people, not unit names.
UNIT_ACTIONS: dict[str, str] = {
    "select": "male speech, man speaking",
    "sel": "male speech, man speaking",
    "ack": "male speech, man speaking",
    "die": "a man screaming in pain",
    "walk": "footsteps",
    "mine": "a pickaxe digging",
    "harvest": "a pickaxe digging",
    "harvest_wood": "an axe chopping wood",  # a worker felling trees, not a knock on wood
    "build": "hammering",
    "fly": "wings flapping",
    "building_fall": "a building collapsing",
    "fall": "a building collapsing",
    "hit": "an impact, a hit",
}
# Attack sounds depend on the weapon; unit names hint at it (the longest matching key wins).
UNIT_WEAPONS: dict[str, str] = {
    "sword": "a sword clashing", "guard": "a sword clashing", "knight": "a sword clashing",
    "warrior": "a sword clashing", "swordman": "a sword clashing", "swordsman": "a sword clashing",
    "spearman": "a spear thrust", "archer": "a bow shooting an arrow", "crossbow": "a bow shooting an arrow",
    # a fighter's axe strikes a foe, not a log: "chopping wood" is the worker's harvest sound
    "axe": "an axe striking", "axeman": "an axe striking",
    # a thrown axe with a war cry: neither chopping nor wood
    "axe_thrower": "an axe being thrown",
    "catapult": "a catapult launching", "archmage": "a magic spell", "battlemage": "a magic spell",
    "initiate": "a magic spell", "summoner": "a magic spell", "daemon": "a monster roaring",
    "dragon": "a dragon roaring", "golem": "a monster roaring", "horseman": "a sword clashing",
    "stickfighter": "a wooden knock", "bull": "a bull bellowing", "elephant": "an elephant trumpeting",
}

# Units whose work is spell-casting: their "build" is a spell, not hammering.
MAGIC_UNITS = ("initiate", "archmage", "battlemage", "summoner", "magician")
# Flying machines: their "fly" is an engine or rotor, not wings.
FLYING_MACHINES = ("airship", "ornithopter")
# Units that are machines (names as in unit folders and file names: "orni_die1" is the
# ornithopter's): their "die" is the machine wrecked, not a man's scream, and their "walk" is
# wheels or gears, not footsteps. A horseman's "walk" is his horse's hooves.
MACHINE_UNITS = ("catapult", "ballista", "battering_ram", "battle_machine", "machine", "airship",
                 "ornithopter", "orni")
UNIT_WALKS = {"catapult": "a cart rolling", "ballista": "a cart rolling", "battering_ram": "a cart rolling",
              "machine": "machinery", "horseman": "horse hooves galloping", "cavalry": "horse hooves galloping"}

LANGUAGES: dict[str, str] = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "ru": "Russian", "pl": "Polish", "uk": "Ukrainian",
    "be": "Belarusian", "el": "Greek", "ca": "Catalan", "ro": "Romanian", "ja": "Japanese",
    "zh": "Chinese", "sv": "Swedish", "nb": "Norwegian", "fi": "Finnish", "cs": "Czech",
    "sk": "Slovak", "hu": "Hungarian", "tr": "Turkish", "bg": "Bulgarian", "gl": "Galician",
    "eu": "Basque", "da": "Danish", "ko": "Korean", "ar": "Arabic", "hr": "Croatian",
    "sq": "Albanian", "ta": "Tamil", "hi": "Hindi", "is": "Icelandic", "lt": "Lithuanian",
    "sr": "Serbian", "sl": "Slovenian", "id": "Indonesian", "vi": "Vietnamese", "th": "Thai",
    "he": "Hebrew", "fa": "Persian", "ga": "Irish", "gd": "Scottish Gaelic", "cy": "Welsh",
    "af": "Afrikaans", "oc": "Occitan", "ms": "Malay", "et": "Estonian", "lv": "Latvian",
    "mr": "Marathi", "ml": "Malayalam", "te": "Telugu", "kn": "Kannada", "gu": "Gujarati",
    "eo": "Esperanto", "mk": "Macedonian", "ka": "Georgian", "hy": "Armenian",
}

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Label:
    """What a sound is: one AudioSet-style phrase plus the rule that produced it."""

    text: str  # e.g. "footsteps on gravel"
    rule: str  # "music", "voice", "keyword", "description", "unit", "synth"


def tokens_of(text: str) -> list[str]:
    """Lower-case word tokens of a path part: camelCase, '_', '-', digits and '.' split words."""
    text = _CAMEL.sub(" ", text)
    words = re.split(r"[^A-Za-z]+", text)
    out: list[str] = []
    for w in words:
        w = w.lower()
        if len(w) < 2 and w not in ("a",):
            continue
        exp = ABBREVIATIONS.get(w, w)
        out.extend(exp.split())
    return [w for w in out if w]


# Words that say a file is footsteps wherever they stand: the material beside them is the
# surface (refine), not the sound ("step_leather1" is footsteps in leather shoes, not leather creaking).
STEP_WORDS = ("footstep", "footsteps", "step", "steps")
# Drum-kit pieces name the sound wherever they stand: a drum kit's "snare ... shot1" is a snare
# take, not a gunshot, and "hihat_foot_pedal" a hi-hat, not footsteps.
DRUM_WORDS = ("snare", "hi-hat", "cymbal")
# Words that describe how a sound is used, not what it is: a label only when nothing else names
# the sound ("open_fire_loop" is a fire, "loop_garzul" a music loop).
WEAK_KEYWORDS = ("loop",)


def keyword_label(tokens: list[str]) -> str | None:
    """The label of the most specific keyword among ``tokens``: two-word phrases first, then a
    drum-kit piece, then a footstep word, then the last keyword token; a weak keyword only when
    nothing else matches."""
    for i in range(len(tokens) - 2, -1, -1):
        pair = f"{tokens[i]} {tokens[i + 1]}"
        if pair in KEYWORDS:
            return KEYWORDS[pair]
    for words in (DRUM_WORDS, STEP_WORDS):
        for tok in tokens:
            if tok in words:
                return KEYWORDS[tok]
    weak = None
    for tok in reversed(tokens):
        key = tok if tok in KEYWORDS else tok[:-1] if tok.endswith("s") and tok[:-1] in KEYWORDS else None
        if key is None:
            continue
        if key not in WEAK_KEYWORDS:
            return KEYWORDS[key]
        weak = weak or KEYWORDS[key]
    return weak


def refine(label: str, tokens: list[str]) -> str:
    """Add a surface or size qualifier that the keyword alone loses ("footsteps" → "footsteps on gravel")."""
    surfaces = ("gravel", "snow", "sand", "grass", "wood", "metal", "water", "stone", "leather", "dirt")
    if label == "footsteps":
        for s in surfaces:
            if s in tokens:
                return f"footsteps on {s}" if s not in ("leather", "metal") else f"footsteps, {s} shoes"
    if label == "an explosion":
        if "small" in tokens:
            return "a small explosion"
        if "large" in tokens or "big" in tokens:
            return "a large explosion"
    if label == "a cannon firing" and "large" in tokens:
        return "a large cannon firing"
    return label


def language_name(code: str) -> str | None:
    """'en_GB' / 'pt-BR' / 'fr' → 'English' / 'Portuguese' / 'French', else None."""
    return LANGUAGES.get(code.replace("-", "_").split("_")[0].lower())


def speech_label(gender: str | None = None, language: str | None = None) -> str:
    """AudioSet-style speech label, e.g. 'a woman speaking French'."""
    who = {"male": "a man", "female": "a woman", "child": "a child"}.get(gender or "", "a person")
    return f"{who} speaking {language}" if language else f"{who} speaking"


def captions_for(label: str, n: int | None = None) -> list[str]:
    """The caption templates applied to ``label`` (all of them when ``n`` is None)."""
    caps = [t.format(label) for t in TEMPLATES]
    if "speaking" in label or "speech" in label:
        caps = [label, f"speech, {label}", f"a voice: {label}", f"{label} in a recording", f"a recording of {label}"]
    if "music" in label:
        caps = [label, f"a recording of {label}", f"{label} playing", f"{label} track", f"some {label}"]
    return caps[:n] if n else caps


def mix_label(a: str, b: str) -> str:
    """Caption of two sounds mixed together."""
    return f"{a} and {b}"
