"""configs/paper.yaml replicates the study: the teacher's 300 motivated answers per in-sample scenario, students
measured with 300 letter answers, all at the study's decoding and parser, one-shot training data only, and the
study's LoRA recipe. Specs are resolved by the real factories; no model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tomarena.agents.resolve import resolve_policy, split_spec
from tomarena.app.pipeline import load_pipeline_config, student_with_adapter
from tomarena.errors import ConfigError
from tomarena.training.config import load_config

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
STUDY_DECODING = {"temperature": 0.8, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "max_new_tokens": 600,
                  "parser": "study", "decoding": "study"}
STUDENT_PATH = "/models/llama-2-7b-chat"


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline_config(PAPER)


def settings(policy) -> dict:
    """The decoding settings of an LLM policy, as its manifest records them."""
    info = policy.describe()
    return {k: info[k] for k in STUDY_DECODING}


def on_tiny_model(spec: str, tiny_model_dir: Path) -> str:
    """The same spec and options with the student's model directory replaced by the tiny test model (the 7b
    directory does not exist here, and resolving checks that the directory exists)."""
    name, _ = split_spec(spec)
    assert name == f"hf:{STUDENT_PATH}"
    return f"hf:{tiny_model_dir}" + spec[len(name):]


def test_teacher_generates_300_motivated_answers_per_scenario_at_the_study_decoding(cfg) -> None:
    assert cfg.teacher_stage.samples == 300
    assert cfg.teacher_stage.repeated_opponents == []
    teacher = resolve_policy(cfg.teacher)  # an HTTP backend: nothing is contacted until it is asked
    assert (teacher.mode, teacher.protocol, teacher.fallback) == ("generate", "motivation", "score")
    assert settings(teacher) == STUDY_DECODING
    assert teacher.describe()["decoding_overrides"] == []
    info = teacher.describe()
    assert (info["backend"], info["base_url"], info["model"]) == (
        "openai", "http://localhost:8000/v1", "meta-llama/Llama-2-70b-chat-hf")


def test_students_answer_300_letters_at_the_study_decoding(cfg, tiny_model_dir, tmp_path) -> None:
    assert cfg.measure.samples == 300
    assert cfg.measure.sets == ["in_sample", "oos_framings", "oos_games", "donation"]
    with pytest.raises(ConfigError, match=f"^model path '{STUDENT_PATH}' is not a local directory"):
        resolve_policy(cfg.student)  # why the options are checked on the tiny model below
    base = resolve_policy(on_tiny_model(cfg.student, tiny_model_dir))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")  # only its presence is checked until the model loads
    tuned = resolve_policy(on_tiny_model(student_with_adapter(cfg, adapter), tiny_model_dir))
    for student in (base, tuned):
        assert (student.mode, student.protocol) == ("generate", "letter")
        assert settings(student) == STUDY_DECODING
        assert student.describe()["decoding_overrides"] == []
        assert (student.backend.dtype, student.backend.device, student.backend.loaded) == ("bfloat16", "auto", False)
    assert (base.backend.adapter, tuned.backend.adapter) == (None, str(adapter.resolve()))


def test_finetuning_uses_the_study_recipe(cfg) -> None:
    ft = cfg.finetune
    assert ft == load_config(None, {"seed": cfg.seed})  # every key given is the default
    assert (ft.rank, ft.alpha, ft.dropout, ft.targets) == (8, 16, 0.0, ("q_proj", "v_proj"))
    assert (ft.lr, ft.scheduler, ft.epochs) == (5e-5, "cosine", 3)
    assert (ft.batch_size, ft.grad_accum, ft.effective_batch) == (8, 8, 64)
    assert cfg.finetune_config is None


def test_arena_runs_use_the_model_service_on_ray(cfg) -> None:
    from tomarena.app.pipeline import ArenaStage, plan

    runs = [s for s in plan(cfg) if isinstance(s, ArenaStage)]
    assert len(runs) == 1 + 3 * 4 - 1 + 1  # teacher sweep, 4 sets x 3 models (teacher in-sample reused), tournament
    assert {(s.config.executor, s.config.replicas, s.config.max_batch, s.config.seed) for s in runs} == {
        ("ray", 1, 64, 0)}
