"""Training data: read exported traces (TRL chat JSONL, or Parquet with the same columns), check them, split
off held-out framings/games, and tokenize into masked SFT items and de-duplicated answer-distribution items.

Answer tokens: the label of each action ("C", "D") is scored through the token of its bare encoding "C"
(the first token after the generation prompt carries no leading space); " C" is used only when "C" is not a
single token. All probability mass of the target goes on that primary token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomarena.errors import BackendError, ConfigError, TraceError

PARQUET_SUFFIXES = (".parquet", ".pq")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TraceExample:
    """One training example: chat messages ending in the assistant reply, plus the scenario it came from."""

    messages: tuple[dict[str, str], ...]
    letter_messages: tuple[dict[str, str], ...] | None
    teacher_probs: tuple[float, ...] | None
    action_labels: tuple[str, ...]
    game: str
    framing: str
    where: str  # "file:line" for error messages

    @property
    def scenario(self) -> str:
        """`game|framing`, the unit of the holdout split."""
        return f"{self.game}|{self.framing}"


@dataclass(frozen=True)
class SftItem:
    """Token ids of prompt + reply, with labels -100 on every prompt token; `weight` = how many identical
    examples it stands for."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool = False
    weight: float = 1.0

    @property
    def n_targets(self) -> int:
        """Reply tokens that carry a loss."""
        return sum(1 for x in self.labels[1:] if x != IGNORE_INDEX)


@dataclass(frozen=True)
class KlItem:
    """A letter-protocol prompt, its answer-token ids, the teacher's probabilities, and how often it occurs."""

    input_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    target_probs: tuple[float, ...]
    weight: float


def _messages(value: Any, where: str, field: str) -> tuple[dict[str, str], ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{where}: {field} is a string but not JSON chat messages") from exc
    if not isinstance(value, list) or not value:
        raise TraceError(f"{where}: {field} must be a non-empty list of chat messages, got {type(value).__name__}")
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise TraceError(f"{where}: every entry of {field} needs string 'role' and 'content', got {m!r:.80}")
        out.append({"role": m["role"], "content": m["content"]})
    return tuple(out)


def _probs(value: Any, n: int, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        probs = tuple(float(p) for p in value)
    except (TypeError, ValueError) as exc:
        raise TraceError(f"{where}: teacher_probs must be a list of numbers or null, got {value!r:.80}") from exc
    if len(probs) != n or any(not math.isfinite(p) or p < 0 for p in probs) or abs(sum(probs) - 1) > 1e-3:
        raise TraceError(f"{where}: teacher_probs {list(probs)} must be {n} non-negative numbers summing to 1")
    return probs


def parse_record(rec: Any, where: str) -> TraceExample:
    """Check one exported record and turn it into a TraceExample (TraceError naming the line otherwise)."""
    if not isinstance(rec, dict):
        raise TraceError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if rec.get("messages") is None:
        raise TraceError(f"{where}: missing 'messages'")
    messages = _messages(rec["messages"], where, "messages")
    if messages[-1]["role"] != "assistant" or len(messages) < 2:
        raise TraceError(f"{where}: messages must end with an assistant turn after the prompt (no reply to train on)")
    letter = rec.get("letter_messages")
    letter = None if letter is None else _messages(letter, where, "letter_messages")
    if letter and letter[-1]["role"] == "assistant":
        raise TraceError(f"{where}: letter_messages must be the prompt only, without an assistant turn")
    labels = tuple(str(x) for x in (rec.get("action_labels") if rec.get("action_labels") is not None else ("C", "D")))
    return TraceExample(messages, letter, _probs(rec.get("teacher_probs"), len(labels), where), labels,
                        str(rec.get("game") or "unknown"), str(rec.get("framing") or "unknown"), where)


def _jsonl_records(path: Path) -> Iterator[tuple[Any, str]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line), f"{path.name}:{n}"
            except json.JSONDecodeError as exc:
                raise TraceError(f"{path.name}:{n}: not valid JSON ({exc.msg})") from exc


def _parquet_records(path: Path) -> Iterator[tuple[Any, str]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise TraceError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc
    for n, row in enumerate(rows):
        yield row, f"{path.name}:row {n}"


def read_traces(path: Path) -> list[TraceExample]:
    """All examples of a JSONL (one per line) or Parquet trace export; empty or malformed files raise TraceError."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"trace file {path} does not exist")
    records = _parquet_records(path) if path.suffix.lower() in PARQUET_SUFFIXES else _jsonl_records(path)
    examples = [parse_record(rec, where) for rec, where in records]
    if not examples:
        raise TraceError(f"trace file {path} holds no examples")
    return examples


def split_examples(examples: list[TraceExample], holdout_framings: tuple[str, ...] = (),
                   holdout_games: tuple[str, ...] = ()) -> tuple[list[TraceExample], dict[str, Any]]:
    """Drop examples whose framing or game is held out; returns the training set and a record of the split."""
    framings, games = sorted({e.framing for e in examples}), sorted({e.game for e in examples})
    for kind, asked, present in (("framing", holdout_framings, framings), ("game", holdout_games, games)):
        unknown = [x for x in asked if x not in present]
        if unknown:
            raise ConfigError(f"held-out {kind} {unknown[0]!r} does not occur in the traces; present: "
                              f"{', '.join(present)}")
    held = [e for e in examples if e.framing in holdout_framings or e.game in holdout_games]
    train = [e for e in examples if not (e.framing in holdout_framings or e.game in holdout_games)]
    if not train:
        raise ConfigError("the holdouts remove every example; nothing is left to train on")
    split = {"holdout_framings": list(holdout_framings), "holdout_games": list(holdout_games),
             "n_train": len(train), "n_heldout": len(held),
             "train_scenarios": sorted({e.scenario for e in train}),
             "heldout_scenarios": sorted({e.scenario for e in held})}
    return train, split


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_sft(tokenizer: Any, messages: tuple[dict[str, str], ...], max_length: int) -> SftItem:
    """Tokenize prompt and reply separately (so the mask boundary is exact); labels are -100 on the prompt."""
    prompt_text = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full_text.startswith(prompt_text):
        raise BackendError("the chat template renders the prompt differently with and without the reply; "
                           "cannot locate the assistant turn")
    prompt, reply = _ids(tokenizer, prompt_text), _ids(tokenizer, full_text[len(prompt_text):])
    truncated = len(prompt) + len(reply) > max_length
    if truncated:
        keep_reply = max(1, min(len(reply), max_length - len(prompt)))
        reply = reply[:keep_reply]
        prompt = prompt[len(prompt) - (max_length - keep_reply):]
    return SftItem(tuple(prompt + reply), tuple([IGNORE_INDEX] * len(prompt) + reply), truncated)


def dedup_sft(items: list[SftItem]) -> list[SftItem]:
    """Merge identical (prompt, reply) items into one with weight = count, in first-seen order."""
    merged: dict[tuple, SftItem] = {}
    for it in items:
        key = (it.input_ids, it.labels)
        old = merged.get(key)
        merged[key] = it if old is None else SftItem(it.input_ids, it.labels, it.truncated, old.weight + it.weight)
    return list(merged.values())


def label_token_ids(tokenizer: Any, labels: tuple[str, ...]) -> tuple[int, ...] | None:
    """The primary token of each action label ("C" if one token, else " C"); None if a label has none or two
    labels share one."""
    ids = []
    for label in labels:
        for variant in (label, " " + label):
            enc = _ids(tokenizer, variant)
            if len(enc) == 1:
                ids.append(enc[0])
                break
        else:
            return None
    return tuple(ids) if len(set(ids)) == len(ids) else None


def build_kl_items(tokenizer: Any, examples: list[TraceExample], max_length: int) -> tuple[list[KlItem], int]:
    """One item per distinct letter prompt (weight = its count, target = the mean of its teacher_probs);
    returns the items and how many examples with teacher_probs could not be used."""
    groups: dict[tuple, list] = {}
    skipped = 0
    for ex in examples:
        if ex.teacher_probs is None or ex.letter_messages is None:
            continue
        target_ids = label_token_ids(tokenizer, ex.action_labels)
        text = tokenizer.apply_chat_template(list(ex.letter_messages), tokenize=False, add_generation_prompt=True)
        ids = tuple(_ids(tokenizer, text))
        if target_ids is None or len(ids) > max_length:
            skipped += 1
            continue
        group = groups.setdefault((ids, target_ids), [0.0, [0.0] * len(target_ids)])
        group[0] += 1
        group[1] = [a + b for a, b in zip(group[1], ex.teacher_probs)]
    items = [KlItem(ids, tids, tuple(s / count for s in sums), count) for (ids, tids), (count, sums) in groups.items()]
    return items, skipped
