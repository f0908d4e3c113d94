"""HFBackend on a tiny random Llama built in the test: scoring equals a plain transformers forward (with and
without prefix reuse, batched or not, multi-token labels) and, one prompt per forward, the same bits in any call
order and company; seeded generation with top_p / top_k / repetition penalty, adapters, errors, pickling."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from tomarena.agents.llm.hf_backend import HFBackend
from tomarena.agents.llm.hf_cache import BlockCache
from tomarena.agents.llm.hf_score import exclusive_logprobs, other_mass
from tomarena.agents.llm.prefix import plan_batches
from tomarena.errors import BackendError, ConfigError

SYSTEM = {"role": "system", "content": "You are taking part in the scenario described below. You run a shop."}


def prompts() -> list[list[dict[str, str]]]:
    """Seven prompts: a shared system message, varying histories, two exact duplicates."""
    ps = [[SYSTEM, {"role": "user", "content": "Reply with C or D. " + "Round 1: you chose C. " * k}]
          for k in range(5)]
    return ps + ps[:2]


@pytest.fixture(scope="module")
def plain(tiny_model_dir: Path):
    """A plainly loaded model + tokenizer: the reference the backend must match."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def reference(plain, messages, options, answer_prefix: str = "") -> np.ndarray:
    """log P(option) by one unbatched forward per label sequence, summing the bare and spaced forms."""
    import torch

    model, tok = plain
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + answer_prefix
    ids = tok(text, add_special_tokens=False).input_ids
    out = []
    for opt in options:
        total = 0.0
        for seq in {tuple(tok(v, add_special_tokens=False).input_ids) for v in (opt, " " + opt)}:
            with torch.no_grad():
                lp = model(torch.tensor([ids + list(seq)])).logits[0].log_softmax(-1)
            total += float(np.exp(sum(float(lp[len(ids) - 1 + t, s]) for t, s in enumerate(seq))))
        out.append(np.log(total))
    return np.array(out)


@pytest.mark.parametrize(("batch_size", "prefix_reuse"), [(1, False), (1, True), (3, False), (3, True), (16, True)])
def test_score_equals_plain_forward(tiny_model_dir, plain, batch_size, prefix_reuse) -> None:
    b = HFBackend(str(tiny_model_dir), batch_size=batch_size, prefix_reuse=prefix_reuse)
    ps = prompts()
    logp, ntok = b.score_detailed(ps, ["C", "D"])
    ref = np.stack([reference(plain, p, ["C", "D"]) for p in ps])
    np.testing.assert_allclose(logp, ref, atol=1e-5, rtol=0)
    assert ntok == [len(b.render(p)) for p in ps]
    assert b.stats["unique_prompts"] == 5 and b.stats["prompts"] == 7
    np.testing.assert_allclose(other_mass(logp), 1 - np.exp(ref).sum(axis=1), atol=1e-5)
    if prefix_reuse:  # the shared system prefix was computed once per batch, not once per row
        assert b.stats["forward_tokens"] < sum(len(b.render(p)) for p in ps[:5])


def test_prefix_cache_is_reused_across_calls(tiny_model_dir, plain) -> None:
    b = HFBackend(str(tiny_model_dir))
    first = b.score(prompts(), ["C", "D"])
    reused, forwarded = b.stats["prefix_tokens_reused"], b.stats["forward_tokens"]
    second = b.score(prompts()[:4], ["C", "D"])
    lengths = [len(b.render(p)) for p in prompts()[:4]]
    assert b.stats["prefix_tokens_reused"] - reused == sum(n - n % 32 for n in lengths)  # every whole block
    assert b.stats["forward_tokens"] - forwarded == sum(n % 32 for n in lengths)  # only the tails
    np.testing.assert_allclose(second, np.stack([reference(plain, p, ["C", "D"]) for p in prompts()[:4]]),
                               atol=1e-5, rtol=0)
    np.testing.assert_array_equal(second, first[:4])


def test_one_prompt_per_forward_scores_the_same_bits_in_any_call(tiny_model_dir) -> None:
    """batch_size 1: each prompt's scores are the same bits alone, in reverse order, among others, with a cold or
    a warm cache, so the backend declares itself batch-invariant; a padded batch does not."""
    ps = prompts()[:5]
    together = HFBackend(str(tiny_model_dir)).score(ps, ["C", "D"])
    alone = np.concatenate([HFBackend(str(tiny_model_dir)).score([p], ["C", "D"]) for p in ps])
    warm = HFBackend(str(tiny_model_dir))
    backwards = np.concatenate([warm.score([p], ["C", "D"]) for p in ps[::-1]])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, backwards)
    assert HFBackend(str(tiny_model_dir)).batch_invariant
    assert not HFBackend(str(tiny_model_dir), batch_size=3).batch_invariant


def test_padded_batches_do_not_depend_on_what_was_cached_before(tiny_model_dir) -> None:
    """batch_size > 1: a call's scores are the same bits on a fresh backend and on one whose cache holds other
    prompts' blocks (cached prefixes are built block by block, never extended from whatever was cached)."""
    ps = prompts()[:5]
    fresh = HFBackend(str(tiny_model_dir), batch_size=3).score(ps, ["C", "D"])
    warm = HFBackend(str(tiny_model_dir), batch_size=3)
    warm.score(prompts()[3:4], ["C", "D"])
    warm.score([[SYSTEM, {"role": "user", "content": "Reply with C or D. Something else entirely."}]], ["C", "D"])
    np.testing.assert_array_equal(warm.score(ps, ["C", "D"]), fresh)


def test_block_cache_keeps_the_leading_blocks_and_refuses_partial_ones(tiny_model_dir) -> None:
    """The LRU holds at most max_tokens of blocks and evicts a chain's deepest blocks first; a prefix must be whole
    blocks."""
    b = HFBackend(str(tiny_model_dir))
    b.load()
    cache = BlockCache(max_tokens=32, block=16)
    stats = {"prefix_tokens_reused": 0, "forward_tokens": 0}
    row = tuple(range(3, 51))
    kv = cache.kv(b._model, row, stats)
    assert kv.get_seq_length() == 48 and stats == {"prefix_tokens_reused": 0, "forward_tokens": 48}
    assert sorted(map(len, cache.entries)) == [16, 32]  # the third block was evicted, the leading two kept
    assert cache.cached_blocks(row) == 2
    cache.kv(b._model, row[:32], stats)
    assert stats == {"prefix_tokens_reused": 32, "forward_tokens": 48}
    with pytest.raises(ValueError, match="whole number of 16-token blocks, got 20 tokens"):
        cache.kv(b._model, row[:20], stats)


def test_multi_token_labels_and_answer_prefix(tiny_model_dir, plain) -> None:
    b = HFBackend(str(tiny_model_dir), batch_size=4)
    options = ["co-player", "points", "Think"]
    seqs = [s for _, s in b.option_sequences(options)]
    assert max(len(s) for s in seqs) > 1
    assert not any(a != c and c[:len(a)] == a for a in seqs for c in seqs)  # no label is a prefix of another
    ps = prompts()[:3]
    logp = b.score(ps, options, answer_prefix="I choose")
    ref = np.stack([reference(plain, p, options, "I choose") for p in ps])
    np.testing.assert_allclose(logp, ref, atol=1e-5, rtol=0)


def test_exclusive_probabilities_for_nested_labels() -> None:
    seqs = [(0, (1,)), (1, (1, 2)), (2, (1, 2, 3)), (0, (7,))]
    logp = exclusive_logprobs(np.log([0.5, 0.2, 0.05, 0.1]), seqs, 3)
    np.testing.assert_allclose(np.exp(logp), [0.3 + 0.1, 0.15, 0.05])


def test_generation_is_seeded_per_prompt(tiny_model_dir) -> None:
    b = HFBackend(str(tiny_model_dir))
    ps = prompts()[:3]
    batch = b.generate(ps, max_new_tokens=6, temperature=1.0, seeds=[11, 12, 13])
    alone = b.generate(ps[1:2], max_new_tokens=6, temperature=1.0, seeds=[12])
    assert alone[0] == batch[1]
    assert batch[0][1] == len(b.render(ps[0])) and 0 < batch[0][2] <= 6
    assert b.generate(ps[:1], 6, 1.0, [11]) == batch[:1]
    greedy = b.generate(ps[:1], 6, 0.0, [1])
    assert greedy == b.generate(ps[:1], 6, 0.0, [2])
    with pytest.raises(ConfigError, match="one seed per prompt"):
        b.generate(ps, 4, 1.0, [1])


def test_batched_generation_draws_each_answer_from_its_own_seed(tiny_model_dir) -> None:
    """batch_size > 1 samples prompts together in one padded generate(): an answer depends on its prompt and seed,
    not on its place in the batch or on the others; greedy answers and token counts equal the one-at-a-time ones."""
    ps = prompts()[:4]
    batched = HFBackend(str(tiny_model_dir), batch_size=3)
    calls = []
    batched.load()
    real = batched._model.generate
    batched._model.generate = lambda **kw: calls.append(kw["input_ids"].shape[0]) or real(**kw)
    forward = batched.generate(ps, 8, 1.0, [11, 12, 13, 14])
    backward = batched.generate(ps[::-1], 8, 1.0, [14, 13, 12, 11])[::-1]
    assert calls == [3, 1, 3, 1] and forward == backward
    assert len({text for text, _, _ in forward}) > 1
    assert [n for _, n, _ in forward] == [len(batched.render(p)) for p in ps]
    one = HFBackend(str(tiny_model_dir))
    assert batched.generate(ps, 8, 0.0, [1, 2, 3, 4]) == one.generate(ps, 8, 0.0, [1, 2, 3, 4])


def test_generation_passes_the_sampling_settings(tiny_model_dir, monkeypatch) -> None:
    """top_p, top_k and repetition_penalty reach transformers' generate() exactly as given (a recording wrapper
    around the real generate); greedy decoding gets the repetition penalty but no sampling settings."""
    b = HFBackend(str(tiny_model_dir))
    b.load()
    seen: list[dict] = []
    real = b._model.generate

    def recording(**kwargs):
        seen.append({k: v for k, v in kwargs.items() if k not in ("input_ids", "attention_mask")})
        return real(**kwargs)

    monkeypatch.setattr(b._model, "generate", recording)
    pad = b.tokenizer.pad_token_id
    b.generate(prompts()[:1], 5, 0.8, [3], top_p=0.9, top_k=50, repetition_penalty=1.1)
    b.generate(prompts()[:1], 5, 0.0, [3], top_p=0.9, top_k=50, repetition_penalty=1.1)
    b.generate(prompts()[:1], 5, 1.0, [3])
    assert seen == [
        {"do_sample": True, "max_new_tokens": 5, "repetition_penalty": 1.1, "temperature": 0.8, "top_p": 0.9,
         "top_k": 50, "pad_token_id": pad},
        {"do_sample": False, "max_new_tokens": 5, "repetition_penalty": 1.1, "pad_token_id": pad},
        {"do_sample": True, "max_new_tokens": 5, "repetition_penalty": 1.0, "temperature": 1.0, "top_p": 1.0,
         "top_k": 0, "pad_token_id": pad},
    ]
    for bad, message in (({"top_p": 0.0}, "top_p must be a number in \\(0, 1\\], got 0.0"),
                         ({"top_k": -2}, "top_k must be a whole number >= 0 \\(0 = off\\), got -2"),
                         ({"repetition_penalty": -1.0}, "repetition_penalty must be a finite number > 0")):
        with pytest.raises(ConfigError, match=f"^{message}"):
            b.generate(prompts()[:1], 5, 1.0, [3], **bad)


def test_sampling_settings_change_what_is_generated(tiny_model_dir) -> None:
    """The settings act on the real model: a nucleus or top-k of one token turns sampling into greedy decoding, and
    the repetition penalty gives exactly transformers' own penalised greedy text (which differs from unpenalised)."""
    import torch

    b = HFBackend(str(tiny_model_dir))
    ps = prompts()[:2]
    greedy = b.generate(ps, 12, 0.0, [1, 2])
    assert b.generate(ps, 12, 1.0, [5, 6], top_p=1e-6) == greedy
    assert b.generate(ps, 12, 1.0, [5, 6], top_k=1) == greedy
    assert b.generate(ps, 12, 1.0, [5, 6]) != greedy  # plain sampling of a random model wanders off
    penalised = b.generate(ps, 12, 0.0, [1, 2], repetition_penalty=1.5)
    for (text, n_in, _), p in zip(penalised, ps, strict=True):
        ids = torch.tensor([b.render(p)])
        ref = b._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=12, repetition_penalty=1.5, pad_token_id=b.tokenizer.pad_token_id)
        assert (text, n_in) == (b.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True), ids.shape[1])
    assert penalised != greedy


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random (non-zero) LoRA on the tiny model, saved with PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                                                  init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


def test_adapter_changes_scores_and_is_hashed(tiny_model_dir, adapter_dir) -> None:
    base = HFBackend(str(tiny_model_dir)).score(prompts()[:2], ["C", "D"])
    tuned_backend = HFBackend(str(tiny_model_dir), adapter=str(adapter_dir))
    tuned = tuned_backend.score(prompts()[:2], ["C", "D"])
    assert np.abs(tuned - base).max() > 1e-3
    info = tuned_backend.describe()
    expected = hashlib.sha256((adapter_dir / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert info["adapter_sha256"] == expected and info["adapter"] == str(adapter_dir)
    assert info["model_sha256"] == hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert HFBackend(str(tiny_model_dir)).hashes() == {"model_sha256": info["model_sha256"], "adapter_sha256": None}


def test_pickling_drops_the_loaded_model(tiny_model_dir) -> None:
    b = HFBackend(str(tiny_model_dir))
    before = b.score(prompts()[:2], ["C", "D"])
    blob = pickle.dumps(b)
    assert len(blob) < 20_000
    clone = pickle.loads(blob)
    assert not clone.loaded and b.loaded
    np.testing.assert_allclose(clone.score(prompts()[:2], ["C", "D"]), before, atol=1e-6)


def test_bad_models_fail_with_one_line(tmp_path, tiny_model_dir) -> None:
    from tests.tiny_model import build_tiny_model

    with pytest.raises(ConfigError, match="model path '/no/such/model' is not a local directory \\(not found\\)"):
        HFBackend("/no/such/model")
    with pytest.raises(ConfigError, match="GGUF file 'x.gguf' not found"):
        HFBackend(str(tmp_path), gguf_file="x.gguf")
    with pytest.raises(ConfigError, match="holds no config.json; give a directory with config"):
        HFBackend(str(tmp_path))
    with pytest.raises(ConfigError, match="holds no adapter_config.json, so it is not a PEFT adapter"):
        HFBackend(str(tiny_model_dir), adapter=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown dtype 'float8'; allowed: float32, bfloat16, float16, auto"):
        HFBackend(str(tmp_path), dtype="float8")
    import torch

    if not torch.cuda.is_available():  # an absent accelerator is named before any weight is read
        with pytest.raises(ConfigError, match="device 'cuda' was asked for but torch sees no such device"):
            HFBackend(str(tiny_model_dir), device="cuda").load()
    bare = build_tiny_model(tmp_path / "bare", with_chat_template=False)
    with pytest.raises(BackendError, match="has no chat template") as err:
        HFBackend(str(bare)).load()
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(BackendError, match="cannot load the tokenizer"):
        HFBackend(str(broken)).load()


def test_later_rounds_continue_the_cached_whole_blocks(tiny_model_dir, plain) -> None:
    """A later round's prompt shares the game text (but not the end) of an earlier one: it continues the cached
    whole blocks of the shared tokens, so only the rest is forwarded; scores stay exact."""
    b = HFBackend(str(tiny_model_dir))
    game = "Reply with C or D. " + "The payoffs are listed here. " * 6
    first = [[SYSTEM, {"role": "user", "content": game + "This is round 1."}]]
    later = [[SYSTEM, {"role": "user", "content": game + "Round 1: you chose C. " * k + "Now round 2."}]
             for k in (1, 2)]
    b.score(first, ["C", "D"])
    shared = min(len(os.path.commonprefix([b.render(first[0]), b.render(p)])) for p in later)
    before = b.stats["forward_tokens"]
    logp = b.score(later, ["C", "D"])
    np.testing.assert_allclose(logp, np.stack([reference(plain, p, ["C", "D"]) for p in later]), atol=1e-5, rtol=0)
    assert b.stats["prefix_tokens_reused"] >= shared - shared % 32
    assert b.stats["forward_tokens"] - before <= sum(len(b.render(p)) for p in later) - (shared - shared % 32)


def test_batches_keep_unrelated_prompts_apart() -> None:
    """Rows sharing less than half their tokens go to separate batches (each then caches its own long prefix);
    rows sharing a long prefix go together."""
    a = tuple(range(10, 40))
    rows = sorted([a + (1, 2), a + (3, 4), (5,) * 31, (6,) * 31])
    batches = plan_batches(rows, [1] * len(rows), 8)
    assert sorted(map(sorted, batches)) == sorted([[(5,) * 31], [(6,) * 31], sorted([a + (1, 2), a + (3, 4)])])
    assert plan_batches(rows, [1] * len(rows), 3, reuse=False) == [rows[:3], rows[3:]]  # plain consecutive batches
