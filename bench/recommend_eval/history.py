"""The evaluation history, written by hand as the habits it comes from; history() turns them
into generations with a fixed seed.

- PAIRS: LoRAs people use together (a character with its usual style, an outfit with its
  setting), with how many generations did. These are the "true partners" of used-with.
- EVERYTHING: helpers added to a share of every generation of their architecture (detail
  tweakers, hand and eye fixes): used with everything, partners of nothing in particular.
- Every LoRA is also used alone a few times, and some pairs are tried once and dropped.
"""

from __future__ import annotations

import random

PAIRS = [
    ("armor_xl", "dark_fantasy_xl", 9), ("armor_xl", "dragon_xl", 6), ("dragon_xl", "dark_fantasy_xl", 4),
    ("kimono_xl", "showa_xl", 5), ("kimono_xl", "ukiyoe_xl", 4), ("kitsune_illu", "kimono_xl", 3),
    ("megacity_xl", "cyborg_xl", 8), ("megacity_xl", "rimlight_xl", 5), ("cyborg_xl", "glitch_xl", 4),
    ("celshade_xl", "seifuku_illu", 7), ("celshade_pony", "nekomimi_pony", 6), ("celshade_pony", "action_pose_pony", 4),
    ("witch_pony", "haunted_xl", 5), ("witch_pony", "pastel_pony", 3), ("lolita_pony", "haunted_xl", 3),
    ("maid_illu", "cafe_illu", 6), ("maid_illu", "anime_eyes_illu", 4),
    ("wedding_xl", "analog_xl", 5), ("analog_xl", "fisheye_xl", 3), ("motorcycle_xl", "analog_xl", 4),
    ("steampunk_xl", "airship_xl", 7), ("steampunk_xl", "blueprint_xl", 3),
    ("samurai_sd15", "sakura_sd15", 7), ("hanfu_sd15", "long_sd15", 5), ("hanfu_sd15", "jianzhi_sd15", 3),
    ("noir_sd15", "saibo_sd15", 4), ("saibo_sd15", "mecha_sd15", 5), ("mecha_sd15", "spacesuit_sd15", 4),
    ("castle_sd15", "fantasy_map_sd15", 4), ("castle_sd15", "snow_village_sd15", 5), ("watercolor_sd15", "castle_sd15", 3),
    ("cinematic_flux", "portrait_flux", 8), ("techwear_flux", "cinematic_flux", 4), ("wolf_flux", "autumn_flux", 5),
    ("supercar_flux", "cinematic_flux", 3), ("reef_flux", "alien_flux", 3),
]

# helper: share of the generations of its architecture it is added to
EVERYTHING = {"detail_sd15": 0.5, "eyes_sd15": 0.35, "detail_xl": 0.5, "hands_xl": 0.35, "realism_flux": 0.6}

SOLO_MAX = 6  # each LoRA is used alone 0..SOLO_MAX times
TRIED_ONCE = 60  # pairs of the same architecture used together once


def partners() -> dict[str, set[str]]:
    """Each LoRA of PAIRS: the LoRAs it is used with by habit."""
    out: dict[str, set[str]] = {}
    for a, b, _ in PAIRS:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


def history(arch: dict[str, str], seed: int = 7) -> list[list[str]]:
    """Generations, each the keys of the LoRAs it used. ``arch``: key -> architecture, of the
    LoRAs in the library (habits with others are left out)."""
    rng = random.Random(seed)
    keys = sorted(arch)
    generations: list[list[str]] = []
    for a, b, n in PAIRS:
        if a in arch and b in arch:
            generations += [[a, b] for _ in range(n)]
    for key in keys:
        if key not in EVERYTHING:
            generations += [[key] for _ in range(rng.randint(0, SOLO_MAX))]
    for _ in range(TRIED_ONCE):
        a = rng.choice(keys)
        b = rng.choice([k for k in keys if k != a and arch[k] == arch[a]])
        generations.append([a, b])
    for used in generations:
        here = arch[used[0]]
        for helper, share in EVERYTHING.items():
            if arch.get(helper) == here and rng.random() < share:
                used.append(helper)
    rng.shuffle(generations)
    return generations
