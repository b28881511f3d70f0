"""LoRAs like a LoRA, and LoRAs that are not, by key (loras.py), written by hand. "Similar"
only ever offers LoRAs of the same architecture, so both sets stay inside it."""

from __future__ import annotations

# anchor: (similar, dissimilar)
SIMILAR = {
    "watercolor_xl": ({"watercolor_pony", "shuimo_xl", "impasto_xl", "ukiyoe_xl", "botanical_xl"},
                      {"megacity_xl", "glitch_xl", "plugsuit_xl"}),
    "celshade_xl": ({"celshade_pony", "anime90s_illu", "manga_illu", "chibi_pony", "anime_bg_illu"},
                    {"analog_xl", "brutalism_xl", "owl_xl"}),
    "megacity_xl": ({"synthwave_xl", "cyborg_xl", "scifi_interior_xl", "glitch_xl", "plugsuit_xl"},
                    {"kimono_xl", "watercolor_pony", "pastry_xl"}),
    "armor_xl": ({"dark_fantasy_xl", "dragon_xl", "elf_illu", "witch_pony"}, {"sticker_xl", "pastry_xl", "analog_xl"}),
    "kimono_xl": ({"qipao_xl", "ukiyoe_xl", "kitsune_illu", "showa_xl"}, {"cyborg_xl", "brutalism_xl", "motorcycle_xl"}),
    "analog_xl": ({"fisheye_xl", "rimlight_xl"}, {"chibi_pony", "pixel_xl", "embroidery_xl"}),
    "pixel_xl": ({"lowpoly_xl", "isometric_xl", "synthwave_xl"}, {"wedding_xl", "owl_xl", "impasto_xl"}),
    "dragon_xl": ({"armor_xl", "dark_fantasy_xl", "elf_illu", "witch_pony"}, {"pastry_xl", "brutalism_xl", "motorcycle_xl"}),
    "watercolor_sd15": ({"ink_sketch_sd15", "charcoal_sd15", "old_masters_sd15", "art_nouveau_sd15", "ukiyoe_sd15"},
                        {"mecha_sd15", "spacesuit_sd15", "vaporwave_sd15"}),
    "saibo_sd15": ({"vaporwave_sd15", "mecha_sd15", "spacesuit_sd15", "noir_sd15"}, {"sakura_sd15", "hanbok_sd15", "origami_sd15"}),
    "hanfu_sd15": ({"hanbok_sd15", "samurai_sd15", "jianzhi_sd15", "long_sd15"}, {"spacesuit_sd15", "locomotive_sd15", "mecha_sd15"}),
    "castle_sd15": ({"cathedral_sd15", "fantasy_map_sd15", "snow_village_sd15", "ruins_sd15"}, {"polaroid_sd15", "eyes_sd15", "ramen_sd15"}),
    "polaroid_sd15": ({"knolling_sd15", "noir_sd15"}, {"mecha_sd15", "jianzhi_sd15", "pixel_sd15"}),
    "watercolor_flux": ({"impressionist_flux", "guofeng_flux"}, {"supercar_flux", "techwear_flux", "iso_pixel_flux"}),
    "cinematic_flux": ({"portrait_flux", "realism_flux", "food_flux", "supercar_flux"}, {"guofeng_flux", "iso_pixel_flux", "clay_flux"}),
    "reef_flux": ({"alien_flux", "autumn_flux"}, {"techwear_flux", "iso_pixel_flux", "portrait_flux"}),
}
