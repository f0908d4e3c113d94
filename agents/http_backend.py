"""OpenAI-compatible chat-completions backend over urllib (vLLM, llama.cpp server, hosted APIs).

Scoring asks for one token with `logprobs`/`top_logprobs` and sums the listed tokens that spell each label
(" C" and "C" alike); labels outside the server's top list count as mass on neither. Generation samples
with a per-prompt seed, `top_p`, and (when set) vLLM's extra fields `top_k` and `repetition_penalty`.
A batch's requests go out concurrently, at most `concurrency` at a time (threads; results keep the prompts' order
and equal sequential requests), so a batching server sees them together and one stalled request holds up only
itself.
Transient failures (5xx, 408, 429, timeouts, dropped connections, truncated or garbage bodies) are retried a
bounded number of times with exponential backoff, 429 honouring Retry-After; every failure is counted in
`stats` by kind. The API key is read from the environment at request time and never stored, logged or put in
an error message.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from tomarena.agents.sampling import check_sampling
from tomarena.errors import BackendError, ConfigError

_T = TypeVar("_T")
_R = TypeVar("_R")
#: guards every backend's `stats` against concurrent updates (module-level, so backends stay picklable for Ray)
_STATS_LOCK = threading.Lock()
#: default and largest number of requests in flight at once per batch
DEFAULT_CONCURRENCY, MAX_CONCURRENCY = 32, 256


class RequestFailed(BackendError):
    """A request that still failed after every retry; `transient` lets policies apply their fixed fallback."""

    transient = True


class _Retry(Exception):
    def __init__(self, kind: str, detail: str, wait: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.wait = kind, detail, wait


def check_base_url(base_url: str) -> str:
    """`base_url` without a trailing slash, or a ConfigError when it is not an http(s) URL with a host."""
    parts = urlsplit(base_url.strip()) if isinstance(base_url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"malformed base URL {base_url!r}; expected http(s)://host[:port][/path], e.g. "
                          "http://127.0.0.1:8000/v1")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"malformed base URL {base_url!r}: bad port") from exc
    return base_url.strip().rstrip("/")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()), 0.0)


class OpenAIBackend:
    """Scores and generates through `POST {base_url}/chat/completions`."""

    kind = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0, top_logprobs: int = 20,
                 max_retry_after: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.base_url = check_base_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"the openai backend needs a model name (model=...), got {model!r}")
        for name, value in (("timeout", timeout), ("backoff", backoff), ("max_backoff", max_backoff)):
            if not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if max_retries < 0 or not 0 <= top_logprobs <= 20:
            raise ConfigError(f"max_retries must be >= 0 and top_logprobs in 0..20, got {max_retries}, {top_logprobs}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ConfigError(f"concurrency must be an integer in 1..{MAX_CONCURRENCY}, got {concurrency!r}")
        self.model, self.api_key_env, self.timeout = model.strip(), api_key_env, float(timeout)
        self.max_retries, self.backoff, self.max_backoff = int(max_retries), float(backoff), float(max_backoff)
        self.top_logprobs, self.max_retry_after, self.sleep = int(top_logprobs), float(max_retry_after), sleep
        self.concurrency = concurrency
        self.stats: dict[str, Any] = {"requests": 0, "attempts": 0, "retries": 0, "failed_requests": 0,
                                      "failures": {}}

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, model={self.model!r})"

    def describe(self) -> dict[str, Any]:
        """Endpoint and model for the run manifest (the key's variable name, never its value)."""
        return {"backend": self.kind, "base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "concurrency": self.concurrency}

    # -- transport ---------------------------------------------------------------------------------------
    def _send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One attempt; transient problems become _Retry, permanent ones BackendError."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = "Bearer " + key
        req = urllib.request.Request(self.base_url + "/chat/completions", data=json.dumps(payload).encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from exc
        except http.client.IncompleteRead as exc:
            raise _Retry("truncated", f"body cut short after {len(exc.partial)} bytes") from exc
        except TimeoutError as exc:
            raise _Retry("timeout", f"no answer within {self.timeout:g} s ({exc})") from exc
        except urllib.error.URLError as exc:
            kind = "timeout" if isinstance(exc.reason, TimeoutError) else "connection"
            raise _Retry(kind, f"{kind}: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retry("connection", f"connection: {type(exc).__name__}: {exc}") from exc
        return self._decode(body)

    def _http_error(self, exc: urllib.error.HTTPError) -> Exception:
        snippet = exc.read(300).decode("utf-8", "replace").strip().replace("\n", " ") if exc.fp else ""
        if exc.code == 429:
            wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            wait = None if wait is None else min(wait, self.max_retry_after)
            return _Retry("http_429", "HTTP 429 (rate limited)", wait)
        if exc.code >= 500 or exc.code == 408:
            return _Retry(f"http_{exc.code // 100}xx" if exc.code >= 500 else "http_408", f"HTTP {exc.code}: {snippet}")
        self._count(f"http_{exc.code}")
        return BackendError(f"{self.base_url}/chat/completions answered HTTP {exc.code}: {snippet[:200]}")

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Retry("bad_json", f"unreadable JSON body ({exc.__class__.__name__}, {len(body)} bytes)") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Retry("bad_json", "JSON body without choices")
        return data

    def _count(self, kind: str) -> None:
        with _STATS_LOCK:
            self.stats["failures"][kind] = self.stats["failures"].get(kind, 0) + 1

    def _bump(self, key: str) -> None:
        """Add one to a counter of `stats` (thread-safe: requests of a batch run concurrently)."""
        with _STATS_LOCK:
            self.stats[key] += 1

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one chat completion with bounded retries; raises RequestFailed after the last attempt."""
        self._bump("requests")
        for attempt in range(self.max_retries + 1):
            self._bump("attempts")
            try:
                return self._send(payload)
            except _Retry as r:
                self._count(r.kind)
                if attempt == self.max_retries:
                    self._bump("failed_requests")
                    raise RequestFailed(f"{self.base_url}/chat/completions failed {attempt + 1} times; "
                                        f"last: {r.detail[:200]}") from r
                self._bump("retries")
                self.sleep(r.wait if r.wait is not None else min(self.backoff * 2**attempt, self.max_backoff))
        raise AssertionError("unreachable")

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """`fn` over `items`, at most `concurrency` at a time, results in order. After a failure, requests not yet
        started are dropped, those in flight finish, and the failure of the earliest item is raised (as in order)."""
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items)), thread_name_prefix="tomarena-http") as pool:
            futures = [pool.submit(fn, x) for x in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                f.cancel()  # only those not yet started; a no-op when all are done
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    # -- the backend interface ---------------------------------------------------------------------------
    def _messages(self, messages: list[dict[str, str]], answer_prefix: str) -> dict[str, Any]:
        if not answer_prefix:
            return {"messages": messages}
        return {"messages": [*messages, {"role": "assistant", "content": answer_prefix}],
                "continue_final_message": True, "add_generation_prompt": False}  # vLLM's extension

    def score(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
              answer_prefix: str = "") -> np.ndarray:
        """Log-probability [n_prompts, n_options] of each option as the next token (from top_logprobs)."""
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def score_detailed(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
                       answer_prefix: str = "") -> tuple[np.ndarray, list[int | None]]:
        """Like `score`, plus the prompt token counts the server reported; identical prompts are sent once."""
        unique = {json.dumps(m, sort_keys=True): m for m in prompts}

        def one(msgs: list[dict[str, str]]) -> tuple[np.ndarray, int | None]:
            payload = {"model": self.model, **self._messages(msgs, answer_prefix), "max_tokens": 1,
                       "logprobs": True, "top_logprobs": self.top_logprobs}
            data = self.request(payload)
            return self._option_logprobs(data, options), (data.get("usage") or {}).get("prompt_tokens")

        done = dict(zip(unique, self._map(one, list(unique.values())), strict=True))
        rows = [done[json.dumps(m, sort_keys=True)] for m in prompts]
        return np.array([r[0] for r in rows]).reshape(len(prompts), len(options)), [r[1] for r in rows]

    def _option_logprobs(self, data: dict[str, Any], options: Sequence[str]) -> np.ndarray:
        try:
            first = data["choices"][0]["logprobs"]["content"][0]
            listed = {first["token"]: float(first["logprob"])}
            listed.update({t["token"]: float(t["logprob"]) for t in first.get("top_logprobs") or []})
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(f"{self.base_url} returned no usable logprobs for model {self.model!r}; this "
                               "server cannot score, use mode=generate") from exc
        probs = np.zeros(len(options))
        for token, lp in listed.items():
            label = token.strip()
            if label in options:
                probs[list(options).index(label)] += math.exp(lp)
        with np.errstate(divide="ignore"):
            return np.log(probs)

    def generate(self, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 64, temperature: float = 1.0,
                 seeds: Sequence[int] | None = None, top_p: float = 1.0, top_k: int = 0,
                 repetition_penalty: float = 1.0) -> list[tuple[str, int, int]]:
        """Sampled answers (text, prompt tokens, completion tokens), one request per prompt with its seed."""
        seeds = list(seeds) if seeds is not None else [0] * len(prompts)
        sampling = self.sampling_fields(top_p, top_k, repetition_penalty)
        if len(seeds) != len(prompts):
            raise ConfigError(f"generate needs one seed per prompt, got {len(seeds)} seeds for {len(prompts)} prompts")

        def one(job: tuple[list[dict[str, str]], int]) -> tuple[str, int, int]:
            data = self.request({"model": self.model, "messages": job[0], "max_tokens": int(max_new_tokens),
                                 "temperature": float(temperature), **sampling, "seed": int(job[1]) % 2**31})
            message = data["choices"][0].get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
            usage = data.get("usage") or {}
            return (text if isinstance(text, str) else "", int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0))

        return self._map(one, list(zip(prompts, seeds, strict=True)))

    @staticmethod
    def sampling_fields(top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0) -> dict[str, Any]:
        """Request-body fields for the sampling settings: `top_p` always (standard OpenAI); `top_k` and
        `repetition_penalty` only when set (0 and 1 mean off), as top-level fields of the body, which is where vLLM
        reads its extra sampling parameters (the OpenAI client's extra_body lands there too)."""
        check_sampling(top_p, top_k, repetition_penalty)
        fields: dict[str, Any] = {"top_p": float(top_p)}
        if top_k:
            fields["top_k"] = int(top_k)
        if repetition_penalty != 1.0:
            fields["repetition_penalty"] = float(repetition_penalty)
        return fields
