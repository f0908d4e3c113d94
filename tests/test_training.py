"""LoRA fine-tuning on a tiny random Llama built in the test: which weights change, the reply-only loss mask,
de-duplication, KL distillation, the holdout split, exact resumption, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tomarena.errors import BackendError, ConfigError, TraceError
from tomarena.training import partial_dir, resumable
from tomarena.training.config import load_config, make_config
from tomarena.training.data import IGNORE_INDEX, dedup_sft, encode_sft, read_traces, split_examples
from tomarena.training.finetune import finetune

FAST = {"max_steps": 3, "batch_size": 2, "grad_accum": 1, "lr": 5e-2, "progress": False, "save_every": 1,
        "device": "cpu", "dtype": "float32", "max_length": 128}


def prompt(game: str, framing: str) -> list[dict[str, str]]:
    """A short letter prompt in the tiny tokenizer's vocabulary."""
    return [{"role": "system", "content": f"You and the co-player ({framing})."},
            {"role": "user", "content": f"{game}: Reply with exactly one letter, C or D, and nothing else."}]


def write_traces(path: Path, p_c: float = 0.9, copies: int = 2) -> Path:
    """2 games x 2 framings x `copies` identical rows, with teacher_probs and the letter prompt."""
    rows = []
    for game in ("prisoners_dilemma", "stag_hunt"):
        for framing in ("business", "team"):
            for _ in range(copies):
                msgs = prompt(game, framing)
                rows.append({"messages": msgs + [{"role": "assistant", "content": "I choose C. because the payoff"}],
                             "letter_messages": msgs, "teacher_probs": [p_c, 1 - p_c], "action_labels": ["C", "D"],
                             "game": game, "framing": framing})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def adapter_tensors(adapter: Path) -> dict[str, np.ndarray]:
    """The saved LoRA tensors of an adapter directory."""
    from safetensors.numpy import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def test_loss_is_masked_to_the_reply(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    msgs = (*prompt("pd", "team"), {"role": "assistant", "content": "I choose D."})
    item = encode_sft(tok, msgs, max_length=512)
    prompt_ids = tok(tok.apply_chat_template(list(msgs[:-1]), tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False).input_ids
    n = len(prompt_ids)
    assert list(item.input_ids[:n]) == prompt_ids
    assert all(x == IGNORE_INDEX for x in item.labels[:n])
    assert list(item.labels[n:]) == list(item.input_ids[n:]) and len(item.labels) > n
    # the template's end-of-turn token closes the reply and is trained too
    assert tok.convert_tokens_to_ids("<|im_end|>") in item.labels[n:]


def test_identical_examples_are_merged_with_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = read_traces(write_traces(tmp_path / "t.jsonl", copies=3))
    items = dedup_sft([encode_sft(tok, e.messages, 512) for e in examples])
    assert len(examples) == 12 and len(items) == 4
    assert [it.weight for it in items] == [3.0, 3.0, 3.0, 3.0]


def test_lora_weights_change_base_weights_do_not_and_scores_move(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tomarena.agents.llm.hf_backend import HFBackend

    traces = write_traces(tmp_path / "t.jsonl")
    out = tmp_path / "adapter"
    manifest = finetune(traces, str(tiny_model_dir), out, make_config(FAST))
    assert manifest["steps"] == 3 and (out / "tomarena_finetune.json").is_file()
    assert not (tmp_path / "adapter.partial").exists()

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = PeftModel.from_pretrained(base, out)
    lora = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    assert lora and any(torch.count_nonzero(v) for k, v in lora.items() if "lora_B" in k)  # B starts at zero
    for name, value in peft_model.get_base_model().state_dict().items():
        if "lora_" not in name:
            key = name.replace("base_layer.", "")
            assert torch.equal(value, before[key]), name

    letters = [prompt("prisoners_dilemma", "business")]
    plain = HFBackend(str(tiny_model_dir)).score(letters, ["C", "D"])
    tuned = HFBackend(str(tiny_model_dir), adapter=str(out)).score(letters, ["C", "D"])
    assert not np.allclose(plain, tuned, atol=1e-4)


def test_kl_distillation_moves_p_c_toward_the_teacher(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tomarena.agents.llm.hf_backend import HFBackend

    traces = write_traces(tmp_path / "t.jsonl", p_c=0.95)
    out = tmp_path / "adapter"
    # a random tiny model's logits are bounded by its small LM head, so the head gets LoRA too here
    cfg = make_config({**FAST, "max_steps": 8, "distill": "kl", "lr": 5e-2, "targets": ["q_proj", "v_proj", "lm_head"]})
    manifest = finetune(traces, str(tiny_model_dir), out, cfg)
    assert manifest["kl_items"] == 4 and manifest["kl_examples"] == 8  # 8 rows, 4 distinct letter prompts
    assert manifest["metrics"][0]["kl"] is not None

    def p_c(backend: HFBackend) -> float:
        lp = backend.score([prompt("stag_hunt", "team")], ["C", "D"])[0]
        return float(np.exp(lp[0]) / np.exp(lp).sum()), float(np.exp(lp).sum())

    (before, mass_before), (after, mass_after) = (p_c(HFBackend(str(tiny_model_dir))),
                                                  p_c(HFBackend(str(tiny_model_dir), adapter=str(out))))
    assert after > before + 0.2 and after > 0.7
    assert mass_after > mass_before + 0.3  # the answer token also moved onto the labels (format adherence)


def test_kl_groups_share_a_prefix_only_where_it_saves_tokens() -> None:
    from tomarena.training.data import KlItem
    from tomarena.training.model import kl_chunks, kl_groups

    def item(*ids: int) -> KlItem:
        return KlItem(tuple(ids), (0, 1), (0.5, 0.5), 1.0)

    a, b, dup = item(*range(1, 11)), item(*range(1, 9), 11, 12), item(*range(1, 11))
    c = item(20, 21, 22)
    assert kl_groups([a, b, c, dup]) == [(8, [0, 3, 1]), (0, [2])]
    # forward passes of at most 2 rows: the group is cut, its pieces keep the prefix; ungrouped items are padded
    assert kl_chunks([a, b, c, dup], 2) == [(8, [a, dup]), (8, [b]), (0, [c])]
    # a 2-token common prefix before long different suffixes: padding both costs more than it saves
    assert kl_groups([item(1, 2, *range(30, 40)), item(1, 2, *range(40, 60))]) == [(0, [0]), (0, [1])]


def test_shared_prefix_kl_loss_and_gradients_equal_the_padded_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tomarena.training.data import build_kl_items
    from tomarena.training.model import kl_groups, kl_losses, load_lora_model, load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    rows = read_traces(write_traces(tmp_path / "kl.jsonl", copies=1))
    items, _ = build_kl_items(tok, rows, 128)
    model = load_lora_model(tiny_model_dir, make_config({**FAST, "targets": ["q_proj", "v_proj"]}))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a non-zero adapter, so the gradients reach every LoRA matrix
    (plen, members), = [g for g in kl_groups(items) if g[0] > 0][:1]
    group = [items[i] for i in members]
    assert len(group) >= 2 and plen >= 5

    def run(shared: int) -> tuple[np.ndarray, np.ndarray]:
        model.zero_grad()
        ce, _ = kl_losses(model, group, tok.pad_token_id, "cpu", plen=shared)
        ce.sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        return ce.detach().numpy(), grads.numpy()

    (ce_pad, g_pad), (ce_shared, g_shared) = run(0), run(plen)
    np.testing.assert_allclose(ce_shared, ce_pad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_shared, g_pad, rtol=1e-4, atol=1e-6)


def lora_model_with_random_adapter(model_dir: Path, values: dict) -> object:
    """A LoRA model whose B matrices are non-zero, so gradients reach every LoRA matrix."""
    from tomarena.training.model import load_lora_model

    model = load_lora_model(model_dir, make_config({**FAST, **values}))
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return model


def test_cached_trunk_gives_the_full_forward_loss_and_gradients(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tomarena.training.data import build_kl_items
    from tomarena.training.model import (
        kl_groups,
        kl_losses,
        load_tokenizer,
        sft_batch,
        sft_loss_sum,
        trunk_start,
    )
    from tomarena.training.trunk import build_trunk, decoder_of

    tok = load_tokenizer(tiny_model_dir)
    rows = read_traces(write_traces(tmp_path / "t.jsonl", copies=1))
    kl_items, _ = build_kl_items(tok, rows, 128)
    sft = dedup_sft([encode_sft(tok, e.messages, 128) for e in rows])
    values = {"lora_layers": 1, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "lm_head"]}
    model = lora_model_with_random_adapter(tiny_model_dir, values)
    start = trunk_start(model, make_config({**FAST, **values}))
    trunk = build_trunk(model, [it.input_ids for it in [*sft, *kl_items]], start)
    assert start == 1 and len(trunk.states) == len(sft) + len(kl_items) == 8
    assert [tuple(trunk.of(it.input_ids).shape) for it in sft] == [(len(it.input_ids), 32) for it in sft]
    (plen, members), = [g for g in kl_groups(kl_items) if g[0] > 0][:1]
    group = [kl_items[i] for i in members]

    def run(loss_fn, trunk_or_none) -> tuple[np.ndarray, np.ndarray]:
        model.zero_grad()
        loss = loss_fn(trunk_or_none)
        loss.sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        return loss.detach().numpy(), grads.numpy()

    pad = tok.pad_token_id
    cases = {
        "sft (right-padded replies)": lambda tr: sft_loss_sum(model, sft_batch(sft, pad, "cpu", tr), tr)[0],
        "kl (left-padded prompts)": lambda tr: kl_losses(model, kl_items, pad, "cpu", trunk=tr)[0],
        "kl (shared prefix)": lambda tr: kl_losses(model, group, pad, "cpu", plen=plen, trunk=tr)[0],
    }
    for name, fn in cases.items():
        (loss_full, g_full), (loss_fast, g_fast) = run(fn, None), run(fn, trunk)
        assert np.abs(g_full).max() > 1e-3, name  # the gradients are real
        np.testing.assert_allclose(loss_fast, loss_full, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(g_fast, g_full, rtol=1e-5, atol=1e-5, err_msg=name)
    dec = decoder_of(model)  # the layer window is undone after every forward
    assert len(dec.layers) == 2 and not isinstance(dec.norm, torch.nn.Identity)
    assert [layer.self_attn.layer_idx for layer in dec.layers] == [0, 1]


def test_lora_layers_puts_lora_only_on_the_top_layers(tiny_model_dir: Path, tmp_path: Path) -> None:
    def lora_modules(values: dict) -> set[str]:
        model = lora_model_with_random_adapter(tiny_model_dir, values)
        return {n.split("model.layers.", 1)[-1] if "model.layers." in n else n.rsplit(".", 1)[-1]
                for n, m in model.named_modules() if hasattr(m, "lora_A")}

    assert lora_modules({"lora_layers": 1}) == {"1.self_attn.q_proj", "1.self_attn.v_proj"}
    assert lora_modules({"lora_layers": 2}) == {f"{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")}
    assert lora_modules({"lora_layers": 1, "targets": "all-linear"}) == {
        f"1.{m}" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    assert lora_modules({"lora_layers": 1, "targets": "q_proj,lm_head"}) == {"1.self_attn.q_proj", "lm_head"}
    assert lora_modules({}) == {f"{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")}


def test_cached_trunk_run_equals_the_full_forward_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl")
    one = {**FAST, "distill": "kl", "lora_layers": 1, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    fast = finetune(traces, str(tiny_model_dir), tmp_path / "fast", make_config(one))
    full = finetune(traces, str(tiny_model_dir), tmp_path / "full", make_config({**one, "cache_trunk": False}))
    assert fast["trunk"]["cached_layers"] == 1 and fast["trunk"]["sequences"] == 8  # 4 replies + 4 letter prompts
    assert full["trunk"] is None
    assert fast["metrics"][0]["loss"] == pytest.approx(full["metrics"][0]["loss"], rel=1e-5)
    assert fast["metrics"][0]["kl"] == pytest.approx(full["metrics"][0]["kl"], rel=1e-5)
    a, b = adapter_tensors(tmp_path / "fast"), adapter_tensors(tmp_path / "full")
    assert a.keys() == b.keys() and all(".layers.1." in k for k in a)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_kl_only_plan_covers_the_letter_prompts_kl_repeat_times_per_epoch() -> None:
    from tomarena.training.finetune import plan_step, steps_per_epoch

    cfg = make_config({**FAST, "distill": "kl_only", "kl_repeat": 2, "batch_size": 2, "grad_accum": 2})
    assert steps_per_epoch(cfg, 0, 5) == 3  # ceil(2 passes x 5 items / 4 per step)
    plans = [plan_step(cfg, 0, 5, s) for s in range(6)]
    assert [p[0] for p in plans] == [0, 0, 0, 1, 1, 1] and all(p[1] == [] for p in plans)
    assert [len(p[2]) for p in plans[:3]] == [4, 4, 2]
    for epoch in (0, 1):
        drawn = [i for p in plans if p[0] == epoch for i in p[2]]
        assert sorted(drawn) == sorted([0, 1, 2, 3, 4] * 2)
    assert plans[3][2] != plans[0][2] and plan_step(cfg, 0, 5, 4) == plans[4]  # reshuffled, and a pure function


def test_kl_only_trains_without_text_and_resumes_exactly(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl", copies=3)
    cfg = make_config({**FAST, "max_steps": 5, "distill": "kl_only", "save_every": 2, "lora_layers": 1})
    whole = finetune(traces, str(tiny_model_dir), tmp_path / "whole", cfg)
    assert whole["sft_items"] == 0 and whole["kl_items"] == 4 and whole["n_train"] == 12
    assert whole["trunk"]["sequences"] == 4  # only the letter prompts are forwarded
    assert [m["steps"] for m in whole["metrics"]] == [2, 2, 1]  # 4 prompts in steps of 2
    assert all(m["loss"] is None and m["kl"] > 0 for m in whole["metrics"])

    def crash(step: int, info: dict) -> None:
        assert info["loss"] is None
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(traces, str(tiny_model_dir), tmp_path / "cut", cfg, on_step=crash)
    manifest = finetune(traces, str(tiny_model_dir), tmp_path / "cut", cfg, resume=True)
    assert manifest["resumed_from_step"] == 2 and manifest["steps"] == 5
    a, b = adapter_tensors(tmp_path / "whole"), adapter_tensors(tmp_path / "cut")
    assert a.keys() == b.keys() and all(".layers.1." in k for k in a)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_lora_layers_and_trunk_config_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from tomarena.training.trunk import check_cacheable

    traces = write_traces(tmp_path / "t.jsonl")
    with pytest.raises(ConfigError) as err:
        finetune(traces, str(tiny_model_dir), tmp_path / "a", make_config({**FAST, "lora_layers": 3}))
    assert str(err.value) == "lora_layers=3 is out of range for this model: allowed 1..2 (it has 2 decoder layers)"
    assert not (tmp_path / "a.partial").exists()  # checked before any output is made
    with pytest.raises(ConfigError, match=r"bad fine-tuning value lora_layers=0\b.*greater than or equal to 1"):
        make_config({"lora_layers": 0})
    with pytest.raises(ConfigError, match=r"LoRA targets \['embed_tokens'\] lie outside the top 1 decoder layers"):
        finetune(traces, str(tiny_model_dir), tmp_path / "b",
                 make_config({**FAST, "lora_layers": 1, "targets": "q_proj,embed_tokens"}))
    with pytest.raises(ConfigError, match="'layers.0.self_attn.q_proj' lies below the top 1 decoder layers"):
        finetune(traces, str(tiny_model_dir), tmp_path / "b2",
                 make_config({**FAST, "lora_layers": 1, "targets": "v_proj,model.layers.0.self_attn.q_proj"}))
    with pytest.raises(ConfigError, match="supports model types llama, mistral, qwen2, qwen3, not 'gemma'"):
        check_cacheable(SimpleNamespace(model_type="gemma"), 2)
    mixed = SimpleNamespace(model_type="qwen2", layer_types=["full_attention"] * 2 + ["sliding_attention"] * 2)
    with pytest.raises(ConfigError, match="attention types"):
        check_cacheable(mixed, 2)
    check_cacheable(mixed, 4)  # the whole stack: the window is the model
    check_cacheable(SimpleNamespace(model_type="llama"), 1)
    no_trunk = {"distill": "kl_only", "lora_layers": 1, "cache_trunk": False}
    rows = [json.loads(line) for line in traces.read_text().splitlines()]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({**r, "teacher_probs": None}) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(ConfigError, match="kl_only needs examples with teacher_probs"):
        finetune(plain, str(tiny_model_dir), tmp_path / "c", make_config({**FAST, **no_trunk}))


def test_holdout_split_is_applied_and_recorded(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl")
    train, split = split_examples(read_traces(traces), holdout_framings=("team",), holdout_games=())
    assert {e.framing for e in train} == {"business"} and split["n_train"] == 4 and split["n_heldout"] == 4
    manifest = finetune(traces, str(tiny_model_dir), tmp_path / "a",
                        make_config({**FAST, "max_steps": 1, "holdout_games": "stag_hunt"}))
    assert manifest["split"]["holdout_games"] == ["stag_hunt"]
    assert manifest["split"]["heldout_scenarios"] == ["stag_hunt|business", "stag_hunt|team"]
    assert manifest["n_train"] == 4


def test_resumed_finetune_equals_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl", copies=3)
    cfg = make_config({**FAST, "max_steps": 5, "distill": "kl", "save_every": 2})
    whole = tmp_path / "whole"
    finetune(traces, str(tiny_model_dir), whole, cfg)

    cut = tmp_path / "cut"

    def crash(step: int, info: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(traces, str(tiny_model_dir), cut, cfg, on_step=crash)
    assert not cut.exists() and resumable(cut) and not resumable(whole)
    with pytest.raises(ConfigError, match="--resume"):
        finetune(traces, str(tiny_model_dir), cut, cfg)
    manifest = finetune(traces, str(tiny_model_dir), cut, cfg, resume=True)
    assert manifest["resumed_from_step"] == 2 and manifest["steps"] == 5
    assert not resumable(cut) and not partial_dir(cut).exists()
    a, b = adapter_tensors(whole), adapter_tensors(cut)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_resume_with_changed_settings_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl")
    out = tmp_path / "a"

    def crash(step: int, info: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(traces, str(tiny_model_dir), out, make_config(FAST), on_step=crash)
    with pytest.raises(ConfigError, match="config differs"):
        finetune(traces, str(tiny_model_dir), out, make_config({**FAST, "lr": 1e-3}), resume=True)


def test_loop_state_round_trips_through_a_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tomarena.training.checkpoint import load_checkpoint, save_checkpoint
    from tomarena.training.finetune import make_optimizer
    from tomarena.training.model import load_lora_model
    from tomarena.training.state import LoopState, Sums

    cfg = make_config(FAST)
    model = load_lora_model(tiny_model_dir, cfg)
    opt, sched = make_optimizer(model, cfg, 3)
    state = LoopState({"config": {"rank": 8, "targets": ["q_proj"]}, "base_sha256": "ab"}, bf16_autocast=True)
    state.record(0, Sums(sft_sum=2.5, sft_tokens=4.0, tokens=7, steps=1, seconds=0.25))
    state.record(1, Sums(kl_sum=0.5, kl_weight=2.0, tokens=3, steps=1, seconds=0.5))
    state.step = 2
    assert state.metrics == [{"epoch": 1, "steps": 1, "loss": 0.625, "kl": None, "tokens": 7, "seconds": 0.25}]
    assert (state.tokens, state.train_seconds, state.acc.kl) == (10, 0.75, 0.25)
    out = tmp_path / "adapter"
    assert not resumable(out)
    save_checkpoint(out, model, opt, sched, state)
    assert resumable(out) and resumable(str(out))
    assert load_checkpoint(out, model, opt, sched, state.fingerprint) == state
    with pytest.raises(ConfigError, match="its base_sha256 differs"):
        load_checkpoint(out, model, opt, sched, {**state.fingerprint, "base_sha256": "cd"})
    saved = partial_dir(out) / "checkpoint" / "state.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "colour": "red"}))
    with pytest.raises(ConfigError, match="loop state this version cannot read") as err:
        load_checkpoint(out, model, opt, sched, state.fingerprint)
    assert "\n" not in str(err.value)


def test_a_partial_folder_without_a_checkpoint_is_not_resumable(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run stopped before its first save leaves nothing to resume: a plain re-run starts over, no --resume."""
    traces = write_traces(tmp_path / "t.jsonl")
    out = tmp_path / "a"
    (partial_dir(out) / "checkpoint.tmp").mkdir(parents=True)
    assert not resumable(out)
    manifest = finetune(traces, str(tiny_model_dir), out, make_config({**FAST, "max_steps": 1}))
    assert manifest["steps"] == 1 and manifest["resumed_from_step"] is None and not partial_dir(out).exists()


@pytest.mark.parametrize("content, match", [
    ("", "holds no examples"),
    ("{not json\n", "not valid JSON"),
    ('{"game": "pd"}\n', "missing 'messages'"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "must end with an assistant turn"),
    ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "C"}]}\n', "string 'role' and 'content'"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "C"}], '
     '"teacher_probs": [0.7, 0.7]}\n', "summing to 1"),
])
def test_malformed_trace_files_are_one_clear_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TraceError, match=match):
        read_traces(path)


def test_bad_base_models_and_configs(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tests.tiny_model import build_tiny_model

    traces = write_traces(tmp_path / "t.jsonl")
    with pytest.raises(ConfigError, match="model path '.*nowhere' is not a local directory \\(not found\\)"):
        finetune(traces, str(tmp_path / "nowhere"), tmp_path / "a", make_config(FAST))
    no_template = build_tiny_model(tmp_path / "plain", with_chat_template=False)
    with pytest.raises(BackendError, match="no chat template"):
        finetune(traces, str(no_template), tmp_path / "b", make_config(FAST))
    with pytest.raises(ConfigError, match="unknown fine-tuning key 'rnak'"):
        make_config({"rnak": 4})
    with pytest.raises(ConfigError, match="rank=0"):
        make_config({"rank": 0})
    with pytest.raises(ConfigError, match="do not fit this model"):
        finetune(traces, str(tiny_model_dir), tmp_path / "c", make_config({**FAST, "targets": "qkv"}))
    with pytest.raises(ConfigError, match="held-out framing 'moon'"):
        finetune(traces, str(tiny_model_dir), tmp_path / "d", make_config({**FAST, "holdout_framings": "moon"}))
    assert not any((tmp_path / x).exists() for x in ("a", "b", "c", "d"))


def test_cpu_preset_loads_with_flag_overrides() -> None:
    cfg = load_config(Path("configs/finetune_cpu.yaml"), {"epochs": 1, "rank": None})
    assert cfg.epochs == 1 and cfg.rank == 8 and cfg.distill == "kl_only" and cfg.effective_batch == 20
    assert cfg.lora_layers == 6 and cfg.cache_trunk and cfg.mixed_precision == "auto"
    assert make_config().model_dump(include={"rank", "alpha", "dropout", "targets", "lr", "scheduler", "epochs"}) == {
        "rank": 8, "alpha": 16, "dropout": 0.0, "targets": ("q_proj", "v_proj"), "lr": 5e-5, "scheduler": "cosine",
        "epochs": 3}
    assert make_config().effective_batch == 64


def test_bf16_autocast_trains_fp32_lora_weights_and_is_recorded(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl")
    one = {**FAST, "max_steps": 1, "distill": "kl"}
    ref = finetune(traces, str(tiny_model_dir), tmp_path / "fp32", make_config(one))
    amp = finetune(traces, str(tiny_model_dir), tmp_path / "bf16", make_config({**one, "mixed_precision": "bf16"}))
    assert ref["bf16_autocast"] is False and amp["bf16_autocast"] is True
    # same first step up to bf16 rounding of the forward pass; the trained weights stay float32
    assert amp["metrics"][0]["loss"] == pytest.approx(ref["metrics"][0]["loss"], rel=0.02)
    assert amp["metrics"][0]["kl"] == pytest.approx(ref["metrics"][0]["kl"], rel=0.05, abs=1e-3)
    assert {t.dtype for t in adapter_tensors(tmp_path / "bf16").values()} == {np.dtype("float32")}


def test_mixed_precision_auto_uses_bf16_only_where_it_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    from tomarena.training import model as tm

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(tm, "cpu_has_native_bf16", lambda native=native: native)
        assert tm.use_bf16_autocast(make_config({"mixed_precision": "auto"}), cpu) is native
        assert tm.use_bf16_autocast(make_config({"mixed_precision": "bf16"}), cpu) is True
        assert tm.use_bf16_autocast(make_config({"mixed_precision": "no"}), cpu) is False
    with pytest.raises(ConfigError, match="mixed_precision"):
        make_config({"mixed_precision": "fp8"})


def test_cli_finetune_runs_and_rejects_bad_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    traces = write_traces(tmp_path / "t.jsonl")
    exe = [sys.executable, "-m", "tomarena.app.cli", "finetune", "--traces", str(traces), "--base", str(tiny_model_dir)]
    ok = subprocess.run([*exe, "--out", str(tmp_path / "a"), "--max-steps", "1", "--batch-size", "2",
                         "--grad-accum", "1", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["steps"] == 1
    again = subprocess.run([*exe, "--out", str(tmp_path / "a"), "--max-steps", "1"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    assert (tmp_path / "a" / "tomarena_finetune.json").is_file()  # the finished adapter is untouched
    bad = subprocess.run([*exe, "--out", str(tmp_path / "b"), "--rank", "0"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "rank" in bad.stderr and "Traceback" not in bad.stderr
