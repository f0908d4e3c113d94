"""OpenAI-compatible chat-completions backend over urllib (vLLM, llama.cpp server, hosted APIs).

Scoring asks for one token with `logprobs`/`top_logprobs` and sums the listed tokens that spell each label
(" C" and "C" alike); labels outside the server's top list count as mass on neither. Generation samples
with a per-prompt seed, `top_p`, and (when set) vLLM's extra fields `top_k` and `repetition_penalty`.
A batch's requests go out concurrently (threads; results keep the prompts' order and equal sequential requests),
so a batching server sees them together and one stalled request holds up only itself. How many may be in flight
adapts (AIMD, `AdaptiveLimit`): it halves on every sign of overload (429, 5xx, 408, timeout) and grows by one per
success, up to `concurrency`.
Transient failures (those, plus dropped connections, truncated or garbage bodies) are retried up to `max_retries`
times with exponential backoff and full jitter (a uniform wait up to backoff * 2^attempt, capped at max_backoff),
or after the Retry-After of a 429/503 (seconds or an HTTP date, capped at max_retry_after). A request that still
fails raises RequestFailed (`transient`: the policy records its declared fallback); every failure is counted in
`stats` by kind. `breaker` requests failing in a row mean the endpoint is down: the circuit opens and every request
raises EndpointDown (not transient), which stops the run with its completed matches kept for --resume.
The API key is read from the environment at request time and never stored, logged or put in an error message.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import random
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

from tomarena.agents.llm.sampling import check_sampling
from tomarena.errors import BackendError, ConfigError

_T = TypeVar("_T")
_R = TypeVar("_R")
#: guards every backend's `stats` against concurrent updates (module-level, so backends stay picklable for Ray)
_STATS_LOCK = threading.Lock()
#: default and largest number of requests in flight at once per batch
DEFAULT_CONCURRENCY, MAX_CONCURRENCY = 32, 256


#: failure kinds that mean the server is overloaded: the adaptive concurrency limit halves on each
CONGESTION = ("http_429", "http_5xx", "http_408", "timeout")
#: default number of requests failing in a row (each after its retries) that opens the circuit breaker
DEFAULT_BREAKER = 8


class RequestFailed(BackendError):
    """A request that still failed after every retry; `transient` lets policies apply their fixed fallback."""

    transient = True


class EndpointDown(BackendError):
    """The circuit breaker is open: `breaker` requests in a row failed, so the endpoint is taken to be down and the
    run stops (not transient: no fallback)."""

    transient = False


class _Retry(Exception):
    def __init__(self, kind: str, detail: str, wait: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.wait = kind, detail, wait


def full_jitter(cap: float) -> float:
    """A wait drawn uniformly from [0, cap] (exponential backoff with full jitter spreads retries of many clients)."""
    return random.uniform(0.0, cap)


class AdaptiveLimit:
    """How many requests may be in flight: halved on every sign of overload (never below 1), one more per success
    (never above `ceiling`) - additive increase, multiplicative decrease."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling, self.limit, self.lowest, self.in_flight = ceiling, float(ceiling), ceiling, 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        """Wait for a free slot under the current limit and take it."""
        with self._cond:
            while self.in_flight >= int(self.limit):
                self._cond.wait()
            self.in_flight += 1

    def release(self) -> None:
        """Give a slot back."""
        with self._cond:
            self.in_flight -= 1
            self._cond.notify()

    def over(self) -> bool:
        """Whether more requests are in flight than the limit allows now (it fell while they were out)."""
        with self._cond:
            return self.in_flight > int(self.limit)

    def shrink(self) -> None:
        """Overload seen: halve the limit."""
        with self._cond:
            self.limit = max(1.0, self.limit / 2)
            self.lowest = min(self.lowest, int(self.limit))

    def grow(self) -> None:
        """A success: one more slot, up to the ceiling."""
        with self._cond:
            if self.limit < self.ceiling:
                self.limit = min(float(self.ceiling), self.limit + 1)
                self._cond.notify()


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
    #: not declared: the server batches requests as it likes, so no result is promised independent of its batch
    batch_invariant = False

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0,
                 max_retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0, top_logprobs: int = 20,
                 max_retry_after: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 concurrency: int = DEFAULT_CONCURRENCY, breaker: int = DEFAULT_BREAKER,
                 jitter: Callable[[float], float] = full_jitter) -> None:
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
        if isinstance(breaker, bool) or not isinstance(breaker, int) or breaker < 0:
            raise ConfigError(f"breaker must be a whole number of requests failing in a row >= 0 (0: never stop), "
                              f"got {breaker!r}")
        self.model, self.api_key_env, self.timeout = model.strip(), api_key_env, float(timeout)
        self.max_retries, self.backoff, self.max_backoff = int(max_retries), float(backoff), float(max_backoff)
        self.top_logprobs, self.max_retry_after, self.sleep = int(top_logprobs), float(max_retry_after), sleep
        self.concurrency, self.breaker, self.jitter = concurrency, breaker, jitter
        self.stats: dict[str, Any] = {"requests": 0, "attempts": 0, "retries": 0, "failed_requests": 0,
                                      "failures": {}, "lowest_concurrency": concurrency}
        self._gate: AdaptiveLimit | None = None
        self._failed_in_a_row, self._down = 0, ""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_gate": None}  # a fresh limit (and its lock) where it is unpickled

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, model={self.model!r})"

    @property
    def concurrency_limit(self) -> int:
        """How many requests may be in flight now (the adaptive limit, at most `concurrency`)."""
        return int(self._limit().limit)

    def describe(self) -> dict[str, Any]:
        """Endpoint and model for the run manifest (the key's variable name, never its value)."""
        return {"backend": self.kind, "base_url": self.base_url, "model": self.model, "api_key_env": self.api_key_env,
                "concurrency": self.concurrency}

    def file_hashes(self) -> dict[str, str]:
        """None: an endpoint is named by its URL and model, not by files."""
        return {}

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
        wait = None
        if exc.code in (429, 503):
            wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            wait = None if wait is None else min(wait, self.max_retry_after)
        if exc.code == 429:
            return _Retry("http_429", "HTTP 429 (rate limited)", wait)
        if exc.code >= 500 or exc.code == 408:
            kind = f"http_{exc.code // 100}xx" if exc.code >= 500 else "http_408"
            return _Retry(kind, f"HTTP {exc.code}: {snippet}", wait)
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

    def _limit(self) -> AdaptiveLimit:
        with _STATS_LOCK:
            if self._gate is None:
                self._gate = AdaptiveLimit(self.concurrency)
            return self._gate

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one chat completion in a slot of the adaptive limit, kept through its retries unless the limit fell
        below the requests in flight (then it waits in line again); raises RequestFailed after the last attempt,
        EndpointDown once the circuit breaker is open."""
        self._bump("requests")
        gate = self._limit()
        gate.acquire()
        try:
            for attempt in range(self.max_retries + 1):
                if self._down:
                    raise EndpointDown(self._down)
                self._bump("attempts")
                try:
                    data = self._send(payload)
                except _Retry as r:
                    self._count(r.kind)
                    if r.kind in CONGESTION:
                        gate.shrink()
                        with _STATS_LOCK:
                            self.stats["lowest_concurrency"] = min(self.stats["lowest_concurrency"], gate.lowest)
                    if attempt == self.max_retries:
                        raise self._gave_up(attempt + 1, r) from r
                    self._bump("retries")
                    queue = gate.over()  # beyond the (lowered) limit: wait in line again; else retry in its slot
                    if queue:
                        gate.release()
                    try:
                        self.sleep(r.wait if r.wait is not None else self.jitter(
                            min(self.backoff * 2**attempt, self.max_backoff)))
                    finally:
                        if queue:
                            gate.acquire()
                    continue
                gate.grow()
                with _STATS_LOCK:
                    self._failed_in_a_row = 0
                return data
        finally:
            gate.release()
        raise AssertionError("unreachable")

    def _gave_up(self, attempts: int, last: _Retry) -> BackendError:
        """The error for a request that failed `attempts` times: RequestFailed, or EndpointDown when it is the
        `breaker`-th in a row (the circuit opens: every later request fails at once)."""
        with _STATS_LOCK:
            self.stats["failed_requests"] += 1
            self._failed_in_a_row += 1
            if self.breaker and self._failed_in_a_row >= self.breaker and not self._down:
                self._down = (f"{self.base_url} is down: {self._failed_in_a_row} requests in a row failed, each "
                              f"after {attempts} attempts (last: {last.detail[:200]})")
            down = self._down
        if down:
            return EndpointDown(down)
        return RequestFailed(f"{self.base_url}/chat/completions failed {attempts} times; last: {last.detail[:200]}")

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """`fn` over `items`, at most `concurrency` at a time (fewer while the adaptive limit is lower), results in
        order. After a failure, requests not yet started are dropped, those in flight finish, and the failure of the
        earliest item is raised (as in order), EndpointDown before any other."""
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.concurrency, len(items)), thread_name_prefix="tomarena-http") as pool:
            futures = [pool.submit(fn, x) for x in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                f.cancel()  # only those not yet started; a no-op when all are done
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if errors:  # the endpoint being down comes first: it must stop the run, not become a fallback
            raise next((e for e in errors if isinstance(e, EndpointDown)), errors[0])
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
