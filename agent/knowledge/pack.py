"""The curated pack of known results (``known_results.yaml``), read with ``yaml.safe_load`` and typed."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PACK_FILE = "known_results.yaml"
Kind = Literal["trend", "group", "outlier"]


class PackError(ValueError):
    """A known-results definition is invalid; the message says which and why."""


class Quantity(BaseModel):
    """A physical quantity a column can measure.

    Attributes:
        description: What it is, in words.
        synonyms: Column-name forms (word sequences) that mean this quantity.
        units: Units (astropy strings) the quantity is measured in; an incompatible column unit rules it out.
        proxy_for: Other quantities this one also measures, with the sense (+1, or -1 when it runs backwards).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str
    synonyms: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    proxy_for: dict[str, Literal[-1, 1]] = Field(default_factory=dict)


class KnownResult(BaseModel):
    """One well-established relation or grouping.

    Attributes:
        id: Short identifier ([a-z0-9_-]).
        name: Its usual name.
        kinds: Finding kinds that can recover it (trend, group, outlier).
        quantities: The quantities involved (ids of the pack's quantities).
        sign: For trends, the sign of the monotonic relation of the first two quantities (0 = either).
        x: The driver quantity to control for (residualize on) when the relation is strong.
        controls: Quantities the relation holds at fixed values of.
        shape: The expected shape in words.
        citation: Where it was established.
        context: Words describing the tables it shows up in (helps choose between look-alikes).
        source: 'pack' for the shipped pack, 'user' for ones added with ``serendip known add``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{1,80}$")
    name: str = Field(min_length=3, max_length=300)
    kinds: tuple[Kind, ...] = ("trend",)
    quantities: tuple[str, ...] = Field(min_length=1, max_length=6)
    sign: Literal[-1, 0, 1] = 0
    x: str | None = None
    controls: tuple[str, ...] = ()
    shape: str = ""
    citation: str = Field(min_length=3, max_length=600)
    context: str = ""
    source: Literal["pack", "user"] = "pack"

    @model_validator(mode="after")
    def _check(self) -> "KnownResult":
        if self.x is not None and self.x not in self.quantities:
            raise ValueError(f"x = {self.x!r} must be one of its quantities {list(self.quantities)}")
        if len(set(self.quantities)) != len(self.quantities):
            raise ValueError("quantities must be distinct")
        return self

    def document(self, quantities: dict[str, Quantity]) -> str:
        """The text embedded for similarity search: name, quantities with synonyms, shape and context."""
        parts = [self.name, self.shape, self.context]
        for q in self.quantities:
            info = quantities.get(q)
            parts.append(q.replace("_", " ") + (": " + info.description + "; " + ", ".join(info.synonyms[:6])
                                                if info else ""))
        return " | ".join(p for p in parts if p)


class Pack(BaseModel):
    """The whole pack: quantities and results."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    ignore_tokens: tuple[str, ...] = ()
    quantities: dict[str, Quantity]
    results: tuple[KnownResult, ...]

    @model_validator(mode="after")
    def _refs(self) -> "Pack":
        ids = [r.id for r in self.results]
        if len(set(ids)) != len(ids):
            raise ValueError("result ids must be unique")
        for r in self.results:
            check_quantities(r, self.quantities)
        for name, q in self.quantities.items():
            unknown = [p for p in q.proxy_for if p not in self.quantities]
            if unknown:
                raise ValueError(f"quantity {name!r} is a proxy for unknown quantities {unknown}")
        return self


def check_quantities(result: KnownResult, quantities: dict[str, Quantity]) -> None:
    """Raise ValueError when a result names a quantity the pack does not define."""
    unknown = [q for q in (*result.quantities, *result.controls) if q not in quantities]
    if unknown:
        raise ValueError(f"result {result.id!r} names unknown quantities {unknown}; known: "
                         f"{', '.join(sorted(quantities))}")


def parse_pack(text: str) -> Pack:
    """A pack from YAML text (``yaml.safe_load``: no object construction)."""
    try:
        data = yaml.safe_load(text)
        return Pack.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        raise PackError(f"invalid known-results pack: {where + ': ' if where else ''}{err.get('msg')}") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise PackError(f"invalid known-results pack: {str(exc).splitlines()[0]}") from None


@lru_cache(maxsize=1)
def load_pack() -> Pack:
    """The pack shipped with the package."""
    text = resources.files("serendip.agent.knowledge").joinpath(PACK_FILE).read_text(encoding="utf-8")
    return parse_pack(text)
