"""Known results and memory: tell what is new from what is known.

- :mod:`.pack`: the curated pack of well-established results shipped as ``known_results.yaml`` (typed).
- :mod:`.quantities`: which physical quantity a column measures, from its name (synonyms) and unit.
- :mod:`.embedding`: a local, deterministic embedding function registered with chromadb.
- :mod:`.store`: the chromadb store (known results, past findings) under the user's data directory.
- :mod:`.novelty`: labels every finding ``known``, ``seen`` or ``candidate``.

``findings.json`` keeps ``novelty`` a string (``known`` / ``seen`` / ``candidate``, or ``systematic`` for
a data-quality split a tool marked as such) and adds ``novelty_detail``::

    {"label": "known",
     "known": {"id": "sf_main_sequence", "name": "...", "citation": "...", "shape": "...",
               "expected_sign": 1, "quantities": {"props_mstar": "stellar_mass", "props_sfr": "sfr"},
               "source": "pack" | "user", "also": ["other matching result ids"]},
     "seen": [{"run": "<output folder>", "when": "<UTC ISO time>", "dataset": "<path>",
               "same_table": true, "finding": "F3", "title": "..."}],
     "contradicts": {"id": ..., "name": ..., "citation": ..., "expected_sign": ...}}

``known`` and ``seen`` are present only when they apply; ``contradicts`` names a known relation whose
expected sign the finding reverses (the finding then stays a ``candidate``).
"""
