"""The OpenAI-compatible backend against a real local HTTP server: success, logprobs, 5xx, 429, timeouts,
truncated and garbage bodies, backoff with full jitter and Retry-After, adaptive concurrency, the circuit breaker,
key handling, the sampling fields sent, and the policies built on it."""

from __future__ import annotations

import json
import math
import pickle
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tomarena.agents.llm.http_backend import (
    AdaptiveLimit,
    EndpointDown,
    OpenAIBackend,
    RequestFailed,
    full_jitter,
    retry_after_seconds,
)
from tomarena.agents.llm.llm_policy import LLMPolicy, from_openai_spec
from tomarena.agents.resolve import resolve_policy
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import BackendError, ConfigError

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def completion(content: str = "I choose C.", top: list[tuple[str, float]] | None = None) -> dict:
    """A chat-completions body, with logprobs when `top` is given."""
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": math.log(top[0][1]),
                                           "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top]}]}
    return {"choices": [choice], "usage": {"prompt_tokens": 42, "completion_tokens": 4}}


class Handler(BaseHTTPRequestHandler):
    """Plays the next scripted step for each POST and records what it received."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv.seen.append({"body": json.loads(body), "auth": self.headers.get("Authorization")})
        step = srv.script.pop(0) if srv.script else ("ok", completion())
        kind = step[0]
        try:
            if kind == "sleep":
                time.sleep(step[1])
                return self._send(200, json.dumps(completion()).encode())
            if kind == "status":
                return self._send(step[1], b'{"error": "scripted"}', step[2] if len(step) > 2 else {})
            if kind == "garbage":
                return self._send(200, b"<html>not json{")
            if kind == "truncated":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"choices": [')
                return None
            return self._send(200, json.dumps(step[1]).encode())
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.script, srv.seen = [], []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def srv(server):
    server.script.clear()
    server.seen.clear()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return server


def backend(srv, sleeps: list | None = None, **kw) -> OpenAIBackend:
    """A backend on `srv` whose waits are recorded in `sleeps` instead of slept; backoff waits are their cap (the
    jitter's largest draw) unless `jitter` is given."""
    kw.setdefault("max_retries", 3)
    kw.setdefault("jitter", lambda cap: cap)
    return OpenAIBackend(srv.url, "test-model", api_key_env="TOMARENA_TEST_KEY",
                         sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw)


def calm(requests: int, attempts: int | None = None, concurrency: int = 32) -> dict:
    """The stats of `requests` requests that all succeeded (in `attempts` attempts)."""
    return {"requests": requests, "attempts": attempts or requests, "retries": (attempts or requests) - requests,
            "failed_requests": 0, "failures": {}, "lowest_concurrency": concurrency}


def test_score_sums_label_variants_and_dedupes(srv) -> None:
    srv.script += [("ok", completion(top=[("C", 0.5), ("D", 0.3), (" C", 0.1), ("x", 0.05)]))]
    b = backend(srv)
    logp, ntok = b.score_detailed([MSGS, MSGS], ["C", "D"])
    np.testing.assert_allclose(np.exp(logp), [[0.6, 0.3], [0.6, 0.3]])
    assert ntok == [42, 42]
    assert len(srv.seen) == 1
    sent = srv.seen[0]["body"]
    assert sent["max_tokens"] == 1 and sent["logprobs"] is True and sent["model"] == "test-model"
    assert b.stats == calm(1)


def test_answer_prefix_is_sent_as_assistant_continuation(srv) -> None:
    srv.script += [("ok", completion(top=[(" D", 0.9)]))]
    logp = backend(srv).score([MSGS], ["C", "D"], answer_prefix="I choose")
    assert np.exp(logp[0, 1]) == pytest.approx(0.9) and logp[0, 0] == -np.inf
    sent = srv.seen[0]["body"]
    assert sent["messages"][-1] == {"role": "assistant", "content": "I choose"}
    assert sent["continue_final_message"] is True


def test_5xx_are_retried_with_exponential_backoff(srv) -> None:
    srv.script += [("status", 500), ("status", 502), ("ok", completion(top=[("D", 1.0)]))]
    sleeps: list[float] = []
    b = backend(srv, sleeps, backoff=0.5)
    assert np.exp(b.score([MSGS], ["C", "D"]))[0].tolist() == [0.0, 1.0]
    assert sleeps == [0.5, 1.0]
    assert b.stats["retries"] == 2 and b.stats["failures"] == {"http_5xx": 2} and b.stats["attempts"] == 3


def test_429_honours_retry_after(srv) -> None:
    srv.script += [("status", 429, {"Retry-After": "3"}), ("ok", completion("I choose D."))]
    sleeps: list[float] = []
    b = backend(srv, sleeps)
    assert b.generate([MSGS], 8, 1.0, [7]) == [("I choose D.", 42, 4)]
    assert sleeps == [3.0]
    assert b.stats["failures"] == {"http_429": 1}
    assert srv.seen[-1]["body"]["seed"] == 7 and srv.seen[-1]["body"]["max_tokens"] == 8


def test_timeout_is_retried(srv) -> None:
    srv.script += [("sleep", 1.0)]
    b = backend(srv, timeout=0.2)
    assert b.generate([MSGS], 8, 1.0, [1])[0][0] == "I choose C."
    assert b.stats["failures"] == {"timeout": 1}


def test_truncated_and_garbage_bodies_fail_after_bounded_retries(srv) -> None:
    srv.script += [("truncated",), ("garbage",), ("garbage",)]
    b = backend(srv, max_retries=2)
    with pytest.raises(RequestFailed) as err:
        b.generate([MSGS], 8, 1.0, [1])
    assert "failed 3 times" in str(err.value) and "\n" not in str(err.value)
    assert b.stats["failures"] == {"truncated": 1, "bad_json": 2}
    assert b.stats["failed_requests"] == 1 and b.stats["attempts"] == 3


def test_client_errors_are_not_retried(srv) -> None:
    srv.script += [("status", 401)]
    b = backend(srv)
    with pytest.raises(BackendError, match="HTTP 401") as err:
        b.generate([MSGS], 8, 1.0, [1])
    assert not isinstance(err.value, RequestFailed)
    assert b.stats["attempts"] == 1 and b.stats["failures"] == {"http_401": 1}


def test_server_without_logprobs_cannot_score(srv) -> None:
    srv.script += [("ok", completion())]
    with pytest.raises(BackendError, match="use mode=generate"):
        backend(srv).score([MSGS], ["C", "D"])


def test_connection_refused_counts_as_connection_failure() -> None:
    b = OpenAIBackend("http://127.0.0.1:9/v1", "m", max_retries=1, sleep=lambda s: None, timeout=2)
    with pytest.raises(RequestFailed):
        b.generate([MSGS], 4, 1.0, [0])
    assert b.stats["failures"] == {"connection": 2}


def test_api_key_is_sent_but_never_recorded(srv, monkeypatch) -> None:
    secret = "sk-test-very-secret"
    monkeypatch.setenv("TOMARENA_TEST_KEY", secret)
    srv.script += [("status", 400)]
    b = backend(srv)
    policy = LLMPolicy(b, mode="generate", fallback="D")
    with pytest.raises(BackendError) as err:
        b.generate([MSGS], 4, 1.0, [0])
    assert srv.seen[0]["auth"] == f"Bearer {secret}"
    everything = repr(b) + repr(policy) + json.dumps(policy.describe()) + str(err.value) + str(b.__dict__)
    assert secret not in everything
    assert secret.encode() not in pickle.dumps(OpenAIBackend(srv.url, "m", api_key_env="TOMARENA_TEST_KEY"))


def _pd_obs() -> Observation:
    return Observation(get_game("prisoners_dilemma"), get_framing("business"), 0, 0, 1)


def test_policy_generate_mode_over_http(srv) -> None:
    srv.script += [("ok", completion("**I choose D.** The partner might undercut me."))]
    policy = LLMPolicy(backend(srv), mode="generate", protocol="motivation")
    d, _ = policy.act(_pd_obs(), None, np.random.default_rng(0))
    assert (d.action, d.source, d.parse_status, d.prompt_tokens, d.completion_tokens) == (1, "llm", "ok", 42, 4)
    assert json.loads(d.prompt) == srv.seen[0]["body"]["messages"]


def test_policy_records_backend_failure_with_fixed_fallback(srv) -> None:
    srv.script += [("status", 503)] * 2
    policy = LLMPolicy(backend(srv, max_retries=1), mode="score", fallback="D")
    d, _ = policy.act(_pd_obs(), None, np.random.default_rng(0))
    assert (d.action, d.source, d.parse_status) == (1, "fallback", "failed")
    assert d.error.startswith("backend failed:") and "failed 2 times" in d.error


def test_generate_sends_the_sampling_settings(srv) -> None:
    """top_p is always in the body (standard OpenAI); top_k and repetition_penalty, vLLM's extra fields, only when
    they are set (0 and 1 mean off), as top-level fields of the body."""
    srv.script += [("ok", completion()), ("ok", completion())]
    b = backend(srv)
    b.generate([MSGS], 600, 0.8, [7], top_p=0.9, top_k=50, repetition_penalty=1.1)
    b.generate([MSGS], 8, 1.0, [7])
    assert [x["body"] for x in srv.seen] == [
        {"model": "test-model", "messages": MSGS, "max_tokens": 600, "temperature": 0.8, "top_p": 0.9, "top_k": 50,
         "repetition_penalty": 1.1, "seed": 7},
        {"model": "test-model", "messages": MSGS, "max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "seed": 7},
    ]
    with pytest.raises(ConfigError, match="^top_p must be a number in \\(0, 1\\], got 2$"):
        b.generate([MSGS], 8, 1.0, [7], top_p=2)
    assert len(srv.seen) == 2


def test_study_decoding_spec_over_http(srv) -> None:
    """decoding=study through the spec: the request carries the study's sampling, and a refusal is C by the study's
    rule, recorded as a default decision."""
    srv.script += [("ok", completion("I would rather not choose.")), ("ok", completion("I choose D."))]
    spec = (f"openai:{srv.url}?model=test-model&mode=generate&protocol=letter&decoding=study&api_key_env=NO_SUCH_KEY"
            "&concurrency=1")  # the scripted answers go to requests in arrival order
    policy = resolve_policy(spec)
    out = [d for d, _ in policy.act_batch([_pd_obs()] * 2, [None] * 2, [np.random.default_rng(i) for i in (0, 1)])]
    assert [(d.action, d.source, d.parse_status) for d in out] == [(0, "fallback", "default"), (1, "llm", "ok")]
    sent = [{k: x["body"][k] for k in ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty")}
            for x in srv.seen]
    assert sent == [{"max_tokens": 600, "temperature": 0.8, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1}] * 2
    info = policy.describe()
    assert (info["decoding"], info["top_p"], info["top_k"], info["repetition_penalty"], info["parser"],
            info["backend"]) == ("study", 0.9, 50, 1.1, "study", "openai")


def test_bad_openai_specs_fail_with_one_line() -> None:
    for base in ("not a url", "ftp://host/v1", "http://", "http://host:99999/v1"):
        with pytest.raises(ConfigError, match="malformed base URL"):
            from_openai_spec(base, model="m")
    with pytest.raises(ConfigError, match="needs a model name"):
        from_openai_spec("http://127.0.0.1:8000/v1")
    with pytest.raises(ConfigError, match="unknown option 'bogus'.*allowed: .*api_key_env"):
        resolve_policy("openai:http://127.0.0.1:8000/v1?model=m&bogus=1")
    with pytest.raises(ConfigError, match="unknown mode 'sing'; allowed: score, generate"):
        resolve_policy("openai:http://127.0.0.1:8000/v1?model=m&mode=sing")
    p = resolve_policy("openai:http://127.0.0.1:8000/v1?model=m&temperature=0.5&fallback=C")
    assert (p.temperature, p.fallback, p.backend.model, p.heavy) == (0.5, "C", "m", True)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:10 GMT", now=1792567680.0) == pytest.approx(10.0)


# -- concurrency ------------------------------------------------------------------------------------------------
class EchoHandler(Handler):
    """Answers after `delay` s with a text and logprobs derived from the request; `faults` maps a seed to the
    scripted failures of its first attempts (("stall", s) sleeps past the client's timeout)."""

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        seed = body.get("seed", -1)
        with srv.lock:
            srv.in_flight += 1
            srv.peak = max(srv.peak, srv.in_flight)
            tried = srv.tries.get(seed, 0)
            srv.tries[seed] = tried + 1
        faults = srv.faults.get(seed, ())
        step = faults[tried] if tried < len(faults) else None
        if srv.capacity and srv.in_flight > srv.capacity:  # overloaded: refuse at once, as a rate limiter does
            step = ("status", 429, {"Retry-After": "0"})
        try:
            time.sleep(step[1] if step and step[0] == "stall" else 0.0 if step else srv.delay)
            if step and step[0] == "status":
                return self._send(step[1], b'{"error": "scripted"}', step[2] if len(step) > 2 else {})
            if step and step[0] == "garbage":
                return self._send(200, b"<html>not json{")
            p_c = (sum(map(ord, json.dumps(body["messages"]))) % 97 + 1) / 99
            answer = completion(f"I choose {'CD'[seed % 2]}. ({seed})", top=[("C", p_c), ("D", 1 - p_c)])
            return self._send(200, json.dumps(answer).encode())
        except (BrokenPipeError, ConnectionResetError):
            return None
        finally:
            with srv.lock:
                srv.in_flight -= 1


class WideServer(ThreadingHTTPServer):
    """A threading server whose listen backlog takes a whole concurrent batch."""

    request_queue_size = 128
    daemon_threads = True


@pytest.fixture
def echo():
    srv = WideServer(("127.0.0.1", 0), EchoHandler)
    srv.lock, srv.delay, srv.faults, srv.tries, srv.in_flight, srv.peak = threading.Lock(), 0.0, {}, {}, 0, 0
    srv.capacity = 0  # > 0: requests beyond this many in flight get a 429
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()


def _echo_policy(srv, **options: object) -> LLMPolicy:
    query = "&".join(f"{k}={v}" for k, v in {"model": "m", "mode": "generate", "api_key_env": "NO_SUCH_KEY",
                                             "backoff": 0, **options}.items())
    return resolve_policy(f"openai:{srv.url}?{query}")


def _decide(policy: LLMPolicy, n: int) -> list[tuple]:
    out = policy.act_batch([_pd_obs()] * n, [None] * n, [np.random.default_rng(i) for i in range(n)])
    return [(d.action, d.completion, d.parse_status) for d, _ in out]


def test_a_batch_goes_out_concurrently_with_sequential_results(echo) -> None:
    """64 decisions against a server answering each after 0.5 s take ~2 waves with the default concurrency (the
    acceptance bound, <= 4 s at 1 s each, scaled to <= 2 s), in the order and with the texts of one-by-one requests."""
    sequential = _decide(_echo_policy(echo, concurrency=1), 64)
    echo.delay, echo.peak = 0.5, 0
    policy = _echo_policy(echo)
    assert policy.describe()["concurrency"] == 32
    start = time.perf_counter()
    concurrent = _decide(policy, 64)
    wall = time.perf_counter() - start
    assert concurrent == sequential and len({c for _, c, _ in sequential}) == 64
    assert wall <= 2.0 and echo.peak == 32, (wall, echo.peak)
    assert policy.backend.stats == calm(64)


def test_scores_keep_order_and_dedupe_under_concurrency(echo) -> None:
    prompts = [[{"role": "user", "content": f"q{i % 5}"}] for i in range(12)]
    one = backend(echo, concurrency=1).score_detailed(prompts, ["C", "D"])
    b = backend(echo, concurrency=4)
    many = b.score_detailed(prompts, ["C", "D"])
    np.testing.assert_array_equal(one[0], many[0])
    assert one[1] == many[1] and b.stats["requests"] == 5 and echo.peak <= 4


def test_a_stalled_request_holds_up_only_itself(echo) -> None:
    """One request stalls past its 0.4 s timeout and is retried; the other 15 (0.1 s each) finish meanwhile, so the
    batch takes about one timeout plus one answer, not 15 answers plus the timeout."""
    echo.delay, echo.faults = 0.1, {7: [("stall", 2.0)]}
    b = backend(echo, timeout=0.4)
    start = time.perf_counter()
    out = b.generate([MSGS] * 16, 8, 1.0, list(range(16)))
    wall = time.perf_counter() - start
    assert [t for t, _, _ in out] == [f"I choose {'CD'[s % 2]}. ({s})" for s in range(16)]
    assert wall < 1.2, wall
    assert b.stats == {**calm(16, 17, concurrency=16), "failures": {"timeout": 1}}  # a timeout halves the limit


def test_retry_accounting_is_the_same_under_concurrency(echo) -> None:
    """Per-request retries, backoff and Retry-After and the failure counts match one-by-one requests exactly."""
    faults = {1: [("status", 500)], 2: [("status", 429, {"Retry-After": "3"})], 3: [("garbage",), ("status", 503)]}
    runs = []
    for concurrency in (1, 16):
        echo.faults, echo.tries = dict(faults), {}
        sleeps: list[float] = []
        b = backend(echo, sleeps, backoff=0.25, concurrency=concurrency)
        runs.append((b.generate([MSGS] * 8, 8, 1.0, list(range(8))), sorted(sleeps), b.stats))
    assert runs[0][:2] == runs[1][:2]
    assert runs[1][1] == [0.25, 0.25, 0.5, 3.0]
    assert runs[0][2] == {"requests": 8, "attempts": 12, "retries": 4, "failed_requests": 0,
                          "failures": {"http_5xx": 2, "http_429": 1, "bad_json": 1}, "lowest_concurrency": 1}
    # the 500, the 429 and the 503 each halve the limit of 16; successes in between may have raised it again
    assert runs[1][2] == {**runs[0][2], "lowest_concurrency": runs[1][2]["lowest_concurrency"]}
    assert 2 <= runs[1][2]["lowest_concurrency"] <= 8


def test_a_failed_request_fails_the_batch_as_in_order(echo) -> None:
    """The earliest failing request's error is raised, after the requests in flight finished and were counted."""
    echo.faults = {s: [("status", 500)] * 2 for s in (3, 5)}
    b = backend(echo, max_retries=1, concurrency=8)
    with pytest.raises(RequestFailed, match="failed 2 times"):
        b.generate([MSGS] * 8, 8, 1.0, list(range(8)))
    assert b.stats["failed_requests"] == 2 and b.stats["failures"] == {"http_5xx": 4}
    assert b.stats["attempts"] == 8 + 2 and echo.in_flight == 0


def test_concurrency_out_of_range_is_one_line() -> None:
    for bad in (0, 257, -1):
        with pytest.raises(ConfigError, match=r"^concurrency must be an integer in 1\.\.256, got -?\d+$"):
            OpenAIBackend("http://127.0.0.1:8000/v1", "m", concurrency=bad)
    with pytest.raises(ConfigError, match="concurrency must be an integer in 1..256, got 0"):
        resolve_policy("openai:http://127.0.0.1:8000/v1?model=m&concurrency=0")


# -- backoff with jitter, Retry-After, adaptive concurrency, circuit breaker -------------------------------------
def test_backoff_is_exponential_with_full_jitter_and_capped(srv) -> None:
    srv.script += [("status", 500)] * 4
    sleeps: list[float] = []
    b = backend(srv, sleeps, backoff=0.5, max_backoff=1.5, jitter=full_jitter, max_retries=4)
    assert b.generate([MSGS], 8, 1.0, [1])[0][0] == "I choose C."
    caps = [0.5, 1.0, 1.5, 1.5]
    assert len(sleeps) == 4 and all(0 <= s <= c for s, c in zip(sleeps, caps, strict=True)), sleeps
    draws = [full_jitter(2.0) for _ in range(4000)]
    assert 0 <= min(draws) < 0.05 and 1.95 < max(draws) <= 2 and abs(np.mean(draws) - 1.0) < 0.1


def test_503_and_429_honour_retry_after_in_seconds_or_as_a_date(srv) -> None:
    import email.utils

    soon = email.utils.formatdate(time.time() + 5, usegmt=True)
    srv.script += [("status", 503, {"Retry-After": "2"}), ("status", 429, {"Retry-After": soon}),
                   ("status", 429, {"Retry-After": "600"}), ("status", 503)]
    sleeps: list[float] = []
    b = backend(srv, sleeps, backoff=0.25, max_retries=4, max_retry_after=60)
    assert b.generate([MSGS], 8, 1.0, [1])[0][0] == "I choose C."
    assert sleeps[0] == 2.0 and 3.0 < sleeps[1] <= 5.0 and sleeps[2:] == [60.0, 2.0]  # a 503 without one backs off
    assert b.stats["failures"] == {"http_5xx": 2, "http_429": 2}


def test_adaptive_limit_halves_grows_and_gates() -> None:
    gate = AdaptiveLimit(8)
    for expected in (4, 2, 1, 1):
        gate.shrink()
        assert gate.limit == expected
    gate.grow()
    gate.grow()
    assert gate.limit == 3 and gate.lowest == 1
    for _ in range(10):
        gate.grow()
    assert gate.limit == 8
    gate.limit = 1
    gate.acquire()
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.acquire(), got.set()), daemon=True)
    waiter.start()
    assert not got.wait(0.1)  # the only slot is taken
    gate.release()
    assert got.wait(2)
    gate.release()


def test_concurrency_backs_off_under_rate_limits_and_recovers(echo) -> None:
    """A server that takes 4 requests at a time and answers 429 beyond: the limit falls from 32 to 4 or below, every
    request still succeeds with the texts of one-by-one requests, and once the server copes the limit grows back."""
    expected = [f"I choose {'CD'[s % 2]}. ({s})" for s in range(48)]
    echo.delay, echo.capacity = 0.05, 4
    b = OpenAIBackend(echo.url, "m", api_key_env="NO_SUCH_KEY", backoff=0.01, max_backoff=0.05, max_retries=12)
    assert [t for t, _, _ in b.generate([MSGS] * 48, 8, 1.0, list(range(48)))] == expected
    assert b.stats["failed_requests"] == 0 and b.stats["failures"].get("http_429", 0) > 0
    assert b.stats["lowest_concurrency"] <= 4 and b.concurrency_limit < 32
    echo.capacity, echo.tries = 0, {}
    assert [t for t, _, _ in b.generate([MSGS] * 48, 8, 1.0, list(range(48)))] == expected
    assert b.concurrency_limit == 32


def test_breaker_opens_after_requests_failing_in_a_row(srv) -> None:
    """A success resets the count; the `breaker`-th request failing in a row raises EndpointDown (one line), and
    every later request fails at once without reaching the server."""
    srv.script += [("status", 500)] * 2 + [("ok", completion())] + [("status", 502)] * 6
    b = backend(srv, max_retries=1, breaker=3)
    with pytest.raises(RequestFailed):
        b.generate([MSGS], 8, 1.0, [0])
    b.generate([MSGS], 8, 1.0, [0])
    for _ in range(2):
        with pytest.raises(RequestFailed):
            b.generate([MSGS], 8, 1.0, [0])
    with pytest.raises(EndpointDown) as err:
        b.generate([MSGS], 8, 1.0, [0])
    assert str(err.value) == (f"{srv.url} is down: 3 requests in a row failed, each after 2 attempts (last: HTTP "
                              '502: {"error": "scripted"})')
    assert not getattr(err.value, "transient", True)
    seen = len(srv.seen)
    with pytest.raises(EndpointDown):
        b.generate([MSGS] * 4, 8, 1.0, [0, 1, 2, 3])
    assert len(srv.seen) == seen and b.stats["failed_requests"] == 4


def test_a_down_endpoint_stops_a_concurrent_batch_and_breaker_zero_never_does() -> None:
    dead = "http://127.0.0.1:9/v1"
    b = OpenAIBackend(dead, "m", max_retries=1, breaker=4, concurrency=16, sleep=lambda s: None)
    with pytest.raises(EndpointDown, match="is down: 4 requests in a row failed"):
        b.generate([MSGS] * 16, 4, 1.0, list(range(16)))
    b = OpenAIBackend(dead, "m", max_retries=0, breaker=0, sleep=lambda s: None)
    for _ in range(12):
        with pytest.raises(RequestFailed):
            b.generate([MSGS], 4, 1.0, [0])
    for bad in (-1, True, 1.5):
        with pytest.raises(ConfigError, match=r"^breaker must be a whole number .*, got "):
            OpenAIBackend(dead, "m", breaker=bad)


def test_failed_decisions_take_the_fixed_fallback_until_the_endpoint_is_down(srv) -> None:
    """Each decision whose request exhausts its retries is recorded as failed with the declared fallback, and counted;
    the run stops (EndpointDown, no fallback) only once the breaker opens."""
    srv.script += [("status", 500)] * 4
    b = backend(srv, max_retries=1, breaker=2)
    policy = LLMPolicy(b, mode="generate", fallback="D")
    d, _ = policy.act(_pd_obs(), None, np.random.default_rng(0))
    assert (d.action, d.source, d.parse_status) == (1, "fallback", "failed") and "failed 2 times" in d.error
    assert b.stats["failed_requests"] == 1
    with pytest.raises(EndpointDown):
        policy.act(_pd_obs(), None, np.random.default_rng(1))
    assert b.stats["failed_requests"] == 2


def test_backend_pickles_after_use(srv) -> None:
    b = OpenAIBackend(srv.url, "m", api_key_env="NO_SUCH_KEY")
    b.generate([MSGS], 4, 1.0, [0])
    clone = pickle.loads(pickle.dumps(b))
    assert clone.generate([MSGS], 4, 1.0, [0]) == b.generate([MSGS], 4, 1.0, [0])
