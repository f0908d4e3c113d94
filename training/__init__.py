"""tomarena.training: LoRA distillation of a student from exported gameplay traces.

`finetune(traces, base, out, config)` reads TRL chat JSONL (or Parquet) traces, trains a PEFT LoRA adapter
with the loss on the assistant reply only, optionally fits the answer token to the teacher's action
probabilities (`distill: kl`), and writes a PEFT adapter directory with a `tomarena_finetune.json` manifest.
The loop is plain torch, not TRL's SFTTrainer: it is short, has no dataset/collator machinery to configure,
and lets the KL term and exact resumption be written directly (measured figures are in the issue report).
`resumable(out)` says whether an interrupted fine-tune into `out` can be continued and `partial_dir(out)` where it
keeps its checkpoints, so no caller rebuilds those paths. The base model is loaded, hashed and placed by
agents/llm/hf_load.py, the loader inference uses, so the adapter manifest and a run manifest name a model alike.
"""

from tomarena.training.checkpoint import partial_dir, resumable
from tomarena.training.config import FinetuneConfig, load_config, make_config
from tomarena.training.finetune import finetune

__all__ = ["FinetuneConfig", "finetune", "load_config", "make_config", "partial_dir", "resumable"]
