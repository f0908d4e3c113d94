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

    from tomarena.agents.hf_backend import HFBackend

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
    from tomarena.agents.hf_backend import HFBackend

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
    assert not cut.exists() and (tmp_path / "cut.partial" / "checkpoint" / "state.json").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        finetune(traces, str(tiny_model_dir), cut, cfg)
    manifest = finetune(traces, str(tiny_model_dir), cut, cfg, resume=True)
    assert manifest["resumed_from_step"] == 2 and manifest["steps"] == 5
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
    with pytest.raises(BackendError, match="not found"):
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
    assert cfg.epochs == 1 and cfg.rank == 8 and cfg.distill == "kl" and cfg.effective_batch == 4
    assert cfg.kl_repeat == 6 and cfg.kl_weight == 4.0 and cfg.mixed_precision == "auto"
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
    exe = [sys.executable, "-m", "tomarena.cli", "finetune", "--traces", str(traces), "--base", str(tiny_model_dir)]
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
