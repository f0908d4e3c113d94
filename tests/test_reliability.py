"""Reliability and security: a tournament against a flaky real HTTP endpoint completes with every failure
counted and the same traces as against a healthy one, also when the faults come in one server-wide cycle (through
the CLI, every decision stored); an endpoint that dies mid-run stops the run in one line with its completed matches
kept, and --resume completes it once the endpoint is back; fuzzed model output never crashes a parser or a policy;
API keys never reach a run directory or the terminal; weights never load from pickles; remote code stays off."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_http_backend import Handler
from tomarena.agents.llm.llm_policy import LLMPolicy
from tomarena.agents.llm.parsing import parse_choice, parse_contribution
from tomarena.arena.config import validate_config
from tomarena.arena.runner import run
from tomarena.arena.store import RunStore
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import BackendError

KEY = "sk-planted-4f1c9e7a-never-write-me"
FAULTS = ("http_500", "http_429", "garbage", "truncated", "timeout")


def answer_for(body: dict) -> dict:
    """A deterministic chat completion for a request: P(C) from a hash of the prompt, with logprobs."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
    p_c = 0.1 + 0.8 * digest[0] / 255
    top = [("C", p_c), ("D", 1 - p_c)]
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "C"}, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": "C", "logprob": math.log(p_c),
                                                   "top_logprobs": [{"token": t, "logprob": math.log(p)}
                                                                    for t, p in top]}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1}}


class FlakyHandler(Handler):
    """Fails attempts of a request with the fault kinds in turn, then answers (when `flaky`): the cycle runs over
    each prompt's own attempts, from an offset hashed from it, so concurrent requests cannot change who fails."""

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        key = json.dumps(body["messages"], sort_keys=True)
        with srv.lock:
            srv.auth.add(self.headers.get("Authorization"))
            srv.attempts += 1
            n = srv.tries.get(key, hashlib.sha256(key.encode()).digest()[1])
            srv.tries[key] = n + 1
        fault = FAULTS[n % (len(FAULTS) + 1)] if srv.flaky and n % (len(FAULTS) + 1) < len(FAULTS) else None
        self.reply(fault, answer_for(body), retry_after="0", stall=0.6)

    def reply(self, fault: str | None, answer: dict, retry_after: str, stall: float) -> None:
        """Send `answer`, or first meet `fault`: an HTTP 500, a 429 with Retry-After, an unreadable or truncated
        body, or a stall of `stall` seconds (timeout) before the answer."""
        try:
            if fault == "http_500":
                return self._send(500, b'{"error": "boom"}')
            if fault == "http_429":
                return self._send(429, b'{"error": "slow down"}', {"Retry-After": retry_after})
            if fault == "garbage":
                return self._send(200, b"\x00\xffnot json at all")
            if fault == "truncated":
                self.send_response(200)
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"choices": [{"index": 0,')
                return None
            if fault in ("timeout", "stall"):
                time.sleep(stall)
            return self._send(200, json.dumps(answer).encode())
        except (BrokenPipeError, ConnectionResetError):
            return None


@pytest.fixture
def endpoint():
    """A real local chat-completions server; set `.flaky` to inject faults."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    srv.daemon_threads = True
    srv.lock, srv.attempts, srv.flaky, srv.auth, srv.tries = threading.Lock(), 0, False, set(), {}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()


def remote_run(srv, out: Path) -> Path:
    """A small tournament of an endpoint-backed policy against two classic strategies."""
    spec = (f"openai:{srv.url}?model=judge&api_key_env=TOMARENA_TEST_KEY&timeout=0.3&backoff=0&max_retries=6")
    cfg = validate_config({"policies": [spec, "classic/tit_for_tat", "classic/always_defect"],
                           "games": ["prisoners_dilemma", "stag_hunt"], "framings": ["business", "team"],
                           "rounds": 3, "self_play": False, "seed": 5})
    return run(cfg, out, progress=False)


def test_flaky_endpoint_costs_retries_not_the_run(endpoint, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TOMARENA_TEST_KEY", KEY)
    healthy = remote_run(endpoint, tmp_path / "healthy")
    calm_attempts = endpoint.attempts
    endpoint.flaky, endpoint.attempts, endpoint.tries = True, 0, {}
    flaky = remote_run(endpoint, tmp_path / "flaky")

    a, b = RunStore(healthy).read_frame(), RunStore(flaky).read_frame()
    cols = [c for c in a.columns if c != "run_id"]
    assert len(a) == len(b) > 0 and not b.duplicated(["episode_id", "round", "agent"]).any()
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))

    stats = next(iter(json.loads((flaky / "summary.json").read_text())["backend_stats"].values()))
    assert stats["requests"] == calm_attempts  # one logical request per distinct prompt, as in the calm run
    assert stats["failed_requests"] == 0
    assert set(stats["failures"]) == {"http_5xx", "http_429", "bad_json", "truncated", "timeout"}
    assert sum(stats["failures"].values()) == stats["retries"]
    # the server counts an attempt when it reads the request; a request the client gave up on (timeout) before the
    # server read it, under load and with concurrent requests, is a retry the server may never see
    time.sleep(0.7)  # let handlers still sleeping on a 'timeout' fault finish
    unseen = stats["retries"] - (endpoint.attempts - stats["requests"])
    assert 0 <= unseen <= stats["failures"]["timeout"]
    assert endpoint.auth == {f"Bearer {KEY}"}  # the key was sent ...

    from tomarena.analysis.report import build_report

    build_report([flaky], tmp_path / "flaky" / "report")
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:  # ... and written nowhere
        assert KEY.encode() not in path.read_bytes(), path
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & stat.S_IRUSR and mode & stat.S_IWUSR and not mode & stat.S_IWOTH, (path, oct(mode))


def test_endpoint_down_for_good_is_a_clear_error(endpoint, tmp_path: Path) -> None:
    from tomarena.agents.resolve import resolve_policy

    endpoint.shutdown()
    endpoint.server_close()
    policy = resolve_policy(f"openai:{endpoint.url}?model=m&timeout=0.2&backoff=0&max_retries=1")
    obs = Observation(get_game("prisoners_dilemma"), get_framing("none"), 0, 0, 1, (), ())
    with pytest.raises(BackendError, match="failed 2 times"):
        policy.act(obs, policy.initial_state(), np.random.default_rng(0))
    assert policy.backend.stats["failures"] == {"connection": 2}


# -- through the CLI: a server-wide fault cycle, and an endpoint that dies mid-run -----------------------------------
CYCLE = ("http_500", "http_429", "stall", "truncated", "garbage", "ok")


class CycleHandler(FlakyHandler):
    """With `cycle` on, the server's attempts, whoever sends them, meet 500, 429 (Retry-After), a stall beyond the
    client's timeout, a truncated body and a garbage body in turn, then an answer; `die_after` requests in, it
    stops listening (connections are refused from then on). Answers are texts derived from prompt and seed."""

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with srv.lock:
            srv.auth.add(self.headers.get("Authorization"))
            step = CYCLE[srv.attempts % len(CYCLE)] if srv.cycle else "ok"
            srv.attempts += 1
            if srv.attempts == srv.die_after:
                threading.Thread(target=_stop, args=(srv,), daemon=True).start()
        digest = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).digest()
        answer = answer_for(body)
        answer["choices"][0]["message"]["content"] = f"I choose {'CD'[digest[0] % 2]}."
        self.reply(None if step == "ok" else step, answer, retry_after="0.05", stall=0.4)


def _stop(srv) -> None:
    srv.shutdown()
    srv.server_close()


def _serve(port: int = 0) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), CycleHandler)
    srv.daemon_threads = True
    srv.lock, srv.attempts, srv.cycle, srv.die_after, srv.auth = threading.Lock(), 0, False, 0, set()
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    return srv


@pytest.fixture
def cycling():
    srv = _serve()
    yield srv
    _stop(srv)


def _tournament(url: str, out: Path, *extra: str) -> list[str]:
    spec = (f"openai:{url}?model=x&mode=generate&api_key_env=TOMARENA_TEST_KEY&timeout=0.15&backoff=0.01"
            "&max_retries=5&fallback=D")
    return ["tournament", "--policies", f"{spec},classic/tit_for_tat", "--rounds", "4", "--repetitions", "2",
            "--seed", "4", "--out", str(out), "--no-progress", *extra]


def _no_key_anywhere(root: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    for path in [p for p in root.rglob("*") if p.is_file()]:
        assert KEY.encode() not in path.read_bytes(), path


def _llm_stats(out: Path) -> dict:
    return next(iter(json.loads((out / "summary.json").read_text())["backend_stats"].values()))


def test_cli_tournament_survives_a_server_wide_fault_cycle(cycling, tmp_path: Path, monkeypatch, capsys) -> None:
    from tomarena.app.cli import main

    monkeypatch.setenv("TOMARENA_TEST_KEY", KEY)
    assert main(_tournament(cycling.url, tmp_path / "calm")) == 0
    cycling.cycle, cycling.attempts = True, 0
    start = time.perf_counter()
    assert main(_tournament(cycling.url, tmp_path / "flaky")) == 0, capsys.readouterr().err
    wall = time.perf_counter() - start
    calm, flaky = (RunStore(tmp_path / r).read_frame() for r in ("calm", "flaky"))
    keys = ["episode_id", "round", "agent"]
    assert len(flaky) == len(calm) > 0 and not flaky.duplicated(keys).any()  # every decision stored, once
    stats = _llm_stats(tmp_path / "flaky")
    assert set(stats["failures"]) == {"http_5xx", "http_429", "timeout", "truncated", "bad_json"}
    assert stats["lowest_concurrency"] < 32 and wall < 20, (stats, wall)
    failed = flaky[flaky["error"].fillna("").str.startswith("backend failed")]
    assert set(failed["parse_status"]) <= {"failed"} and set(failed["source"]) <= {"fallback"}
    if stats["failed_requests"] == 0:  # no decision had to fall back: the same traces as against the calm server
        cols = [c for c in calm.columns if c != "run_id"]
        pd.testing.assert_frame_equal(calm[cols].reset_index(drop=True), flaky[cols].reset_index(drop=True))
    else:
        assert len(failed) >= stats["failed_requests"]
    assert cycling.auth == {f"Bearer {KEY}"}
    _no_key_anywhere(tmp_path, *capsys.readouterr())
    with capsys.disabled():
        print(f"\nflaky tournament: {wall:.1f} s, {len(flaky)} decisions, stats {stats}")


def test_cli_run_stops_when_the_endpoint_dies_and_resumes_when_it_is_back(cycling, tmp_path: Path, monkeypatch,
                                                                         capsys) -> None:
    from tomarena.app.cli import main

    monkeypatch.setenv("TOMARENA_TEST_KEY", KEY)
    argv = _tournament(cycling.url, tmp_path / "run", "--chunk-size", "1")
    assert main(_tournament(cycling.url, tmp_path / "whole", "--chunk-size", "1")) == 0
    whole = RunStore(tmp_path / "whole").read_frame()
    cycling.attempts, cycling.die_after = 0, 10  # dies during the second match
    start = time.perf_counter()
    assert main(argv) == 2
    stopped = time.perf_counter() - start
    err = capsys.readouterr().err
    out = tmp_path / "run"
    assert err.count("\n") == 1 and err.startswith(f"tomarena: error: {cycling.url} is down: 8 requests in a row "
                                                   "failed, each after 6 attempts (last: connection"), err
    assert err.endswith(f"; kept {out}, which holds completed work: re-run with --resume to continue\n"), err
    kept = RunStore(out).read_frame()
    assert kept["episode_id"].nunique() >= 1 and not (out / "summary.json").exists()
    _no_key_anywhere(tmp_path, err)

    back = _serve(int(cycling.url.rsplit(":", 1)[1].split("/")[0]))  # the endpoint is back, at the same address
    try:
        assert main([*argv, "--resume"]) == 0
    finally:
        _stop(back)
    resumed = RunStore(out).read_frame()
    keys = ["episode_id", "round", "agent"]
    assert not resumed.duplicated(keys).any() and set(map(tuple, resumed[keys].values)) == set(
        map(tuple, whole[keys].values))
    # matches played while the endpoint answered are those of the uninterrupted run; a match that ended on
    # fallbacks before the breaker opened keeps them, recorded as failed
    clean = resumed.groupby("episode_id")["source"].transform(lambda s: (s != "fallback").all())
    cols = [c for c in whole.columns if c != "run_id"]
    mine = resumed[clean][cols].reset_index(drop=True)
    theirs = whole[whole["episode_id"].isin(set(resumed[clean]["episode_id"]))][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs)
    assert clean.sum() > len(resumed) / 2
    _no_key_anywhere(tmp_path, *capsys.readouterr())
    with capsys.disabled():
        print(f"\ndead endpoint: stopped after {stopped:.1f} s, {kept['episode_id'].nunique()} of "
              f"{whole['episode_id'].nunique()} matches kept, {int((~clean).sum())} decisions on fallbacks")


# -- garbage model output ----------------------------------------------------------------------------------------
class TextBackend:
    """Generation returns the text under test; scoring (the fallback) returns fixed probabilities."""

    batch_invariant = True

    def __init__(self) -> None:
        self.text = ""
        self.stats: dict = {}

    def generate(self, prompts, max_new_tokens, temperature, seeds):
        return [(self.text, 10, 5)] * len(prompts)

    def score_detailed(self, prompts, options, answer_prefix=""):
        return np.log(np.full((len(prompts), len(options)), 0.5 / len(options))), [10] * len(prompts)

    def describe(self) -> dict:
        return {"backend": "text"}

    def score(self, prompts, options, answer_prefix=""):
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def file_hashes(self) -> dict:
        return {}


PD_OBS = Observation(get_game("prisoners_dilemma"), get_framing("business"), 0, 0, 1, (), ())
DONATION_OBS = Observation(get_game("donation"), get_framing("none"), 0, 0, 1, (), ())
GARBAGE = st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                    st.sampled_from(["", " ", "C or D", "I choose", "**D**", "I give -3 dollars", "\u0000C",
                                     "C" * 10_000, "I choose C. " * 500, "\ufeffD", "Ｃ", "1e309"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=GARBAGE)
def test_parsers_never_raise_on_garbage(text: str) -> None:
    for result in (parse_choice(text), parse_contribution(text, 10)):
        assert result.status in ("ok", "failed")
        assert (result.action is None) == (result.status == "failed")
    choice = parse_choice(text)
    assert choice.action in (None, 0, 1)
    amount = parse_contribution(text, 10)
    assert amount.action is None or 0 <= amount.action <= 10


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=GARBAGE, fallback=st.sampled_from(["score", "random", "D"]), donation=st.booleans())
def test_policy_records_every_garbage_answer(text: str, fallback: str, donation: bool) -> None:
    backend = TextBackend()
    backend.text = text
    obs = DONATION_OBS if donation else PD_OBS
    if donation and fallback == "D":
        fallback = "0"
    policy = LLMPolicy(backend, mode="generate", protocol="motivation", fallback=fallback)
    decision, _ = policy.act(obs, policy.initial_state(), np.random.default_rng(1))
    assert 0 <= decision.action < obs.game.n_actions
    assert decision.completion == text  # the raw text is always kept
    if decision.parse_status == "ok":
        assert decision.source == "llm" and decision.error is None
    else:
        assert decision.parse_status in ("fallback", "failed") and decision.source == "fallback"
        assert decision.error is None  # never silent: the status says it failed, the text is kept; no backend erred


# -- security defaults ---------------------------------------------------------------------------------------------
def test_remote_code_is_off_unless_asked(tiny_model_dir: Path) -> None:
    from tomarena.agents.llm.hf_backend import HFBackend
    from tomarena.agents.resolve import resolve_policy

    assert HFBackend(str(tiny_model_dir)).trust_remote_code is False
    assert resolve_policy(f"hf:{tiny_model_dir}").backend.trust_remote_code is False
    assert resolve_policy(f"hf:{tiny_model_dir}?trust_remote_code=true").backend.trust_remote_code is True


def test_pickled_weights_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    from tomarena.agents.llm.hf_backend import HFBackend
    from tomarena.errors import TomarenaError
    from tomarena.training.config import make_config
    from tomarena.training.finetune import finetune

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    from safetensors.torch import load_file

    state = load_file(str(pickled / "model.safetensors"))
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    with pytest.raises(BackendError, match="cannot load the model"):
        HFBackend(str(pickled)).score([[{"role": "user", "content": "hi"}]], ["C", "D"])
    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "C"}]}) + "\n")
    with pytest.raises(TomarenaError):
        finetune(traces, str(pickled), tmp_path / "a", make_config({"progress": False, "max_steps": 1}))
    assert not (tmp_path / "a").exists()


def test_run_files_have_ordinary_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = run(validate_config({"policies": ["classic/tit_for_tat", "classic/always_defect"], "rounds": 2}),
                  tmp_path / "r", progress=False)
    finally:
        os.umask(old)
    for path in out.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
