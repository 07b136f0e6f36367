"""Ollama's ``options`` map (its Modelfile parameters) into the core's sampling options.

Types are checked as Ollama's ``Options.FromMap`` checks them, with its messages: an integer option takes any JSON
number (a fraction is cut off), a float option any number, ``stop`` an array of strings; ``null`` keeps the default;
an unknown option is ignored. Ollama answers a wrongly typed option with a 500; here it is a 400. Ollama checks no
ranges: values the engine cannot run (a negative temperature, ``top_p`` 0) are refused here with a 400.

``num_predict`` -1 (or any value below 1) is "until the context is full", ``seed`` -1 a random seed, ``top_k`` 0 or
less no top-k. ``num_ctx`` narrows the context window (never past the engine's). Options for llama.cpp's loader
(``num_gpu``, ``num_thread``, ``use_mmap``...) and samplers vLLM does not have (``typical_p``, ``repeat_last_n``,
``num_keep``) are type-checked and ignored.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from server.errors import InvalidRequestError

log = logging.getLogger(__name__)

INT, FLOAT, BOOL, STRINGS = "integer", "float32", "boolean", "array"
KINDS = {
    "num_keep": INT,
    "seed": INT,
    "num_predict": INT,
    "top_k": INT,
    "top_p": FLOAT,
    "min_p": FLOAT,
    "typical_p": FLOAT,
    "repeat_last_n": INT,
    "temperature": FLOAT,
    "repeat_penalty": FLOAT,
    "presence_penalty": FLOAT,
    "frequency_penalty": FLOAT,
    "stop": STRINGS,
    "num_ctx": INT,
    "num_batch": INT,
    "num_gpu": INT,
    "main_gpu": INT,
    "use_mmap": BOOL,
    "num_thread": INT,
}
INT64 = 2**63 - 1
# (low, high, low is allowed): what the engine can run
RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, True),
    "top_p": (0.0, 1.0, False),
    "min_p": (0.0, 1.0, True),
    "repeat_penalty": (0.0, 10.0, False),
    "presence_penalty": (-2.0, 2.0, True),
    "frequency_penalty": (-2.0, 2.0, True),
    "top_k": (-INT64 - 1, 1_000_000, True),
}


@dataclass(slots=True)
class Options:
    """The options that change anything here, in the core's terms (None: the default)."""

    max_tokens: int | None = None
    context_window: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] = field(default_factory=list)


def _typed(key: str, kind: str, value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == INT:
        if not number or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidRequestError(f'option "{key}" must be of type integer', param=f"options.{key}")
        if not -INT64 - 1 <= value <= INT64:
            raise InvalidRequestError(f'option "{key}" is out of range', param=f"options.{key}")
        return int(value)  # a fraction is cut off, as Go's int(float64) does
    if kind == FLOAT:
        if not number or not math.isfinite(value):
            raise InvalidRequestError(f'option "{key}" must be of type float32', param=f"options.{key}")
        return float(value)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise InvalidRequestError(f'option "{key}" must be of type boolean', param=f"options.{key}")
        return value
    if not isinstance(value, list):
        raise InvalidRequestError(f'option "{key}" must be of type array', param=f"options.{key}")
    if not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f'option "{key}" must be of an array of strings', param=f"options.{key}")
    return value


def _in_range(key: str, value: float) -> None:
    low, high, closed = RANGES[key]
    if value > high or value < low or (value == low and not closed):
        shown = f"{'from' if closed else 'above'} {low:g} to {high:g}" if key != "top_k" else f"at most {high:g}"
        raise InvalidRequestError(f'option "{key}" must be {shown}', param=f"options.{key}")


def parse_options(raw: dict[str, Any], defaults: dict[str, Any] | None = None) -> Options:
    """``raw`` (a request's ``options``) over ``defaults``, checked and translated."""
    values: dict[str, Any] = {}
    for key, value in [*(defaults or {}).items(), *raw.items()]:
        kind = KINDS.get(key)
        if kind is None:
            log.debug("invalid option provided: %.64s", key)  # as Ollama does: ignored
            continue
        if value is not None:
            values[key] = _typed(key, kind, value)
    for key in RANGES.keys() & values.keys():
        _in_range(key, values[key])
    top_k, seed = values.get("top_k"), values.get("seed")
    return Options(
        max_tokens=n if (n := values.get("num_predict", 0)) > 0 else None,
        context_window=n if (n := values.get("num_ctx", 0)) > 0 else None,
        temperature=values.get("temperature"),
        top_p=values.get("top_p"),
        top_k=None if top_k is None else (top_k if top_k > 0 else -1),
        min_p=values.get("min_p"),
        seed=None if seed is None or seed == -1 else seed,
        repetition_penalty=values.get("repeat_penalty"),
        presence_penalty=values.get("presence_penalty"),
        frequency_penalty=values.get("frequency_penalty"),
        stop=values.get("stop", []),
    )
