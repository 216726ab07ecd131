"""What `model_artifacts/` holds: engine serving overrides and optional LoRA adapters.

Layout (documented in model_artifacts/README.md):
    model_artifacts/serving.json          {"vllm": {ENV: value}, "lmi": {...}, "tgi": {...}}
    model_artifacts/adapters/<name>/      one LoRA adapter per folder (adapter_config.json + weights)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ownllm.settings import ENGINES, Settings, SettingsError

_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class ModelArtifacts:
    root: Path
    adapters: tuple[str, ...] = ()
    serving_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # adapter -> its largest LoRA rank (adapter_config.json `r`, or a bigger `rank_pattern` value)
    adapter_ranks: dict[str, int] = field(default_factory=dict)

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    def overrides_for(self, engine: str) -> dict[str, str]:
        return dict(self.serving_overrides.get(engine, {}))

    @property
    def max_lora_rank(self) -> int | None:
        """The rank the engine must reserve room for: the largest over every adapter."""
        return max(self.adapter_ranks.values(), default=None)


def load_artifacts(root: Path) -> ModelArtifacts:
    """Read and check model_artifacts/; every problem is reported at once."""
    problems: list[str] = []
    overrides: dict[str, dict[str, str]] = {}
    serving = root / "serving.json"
    if serving.is_file():
        try:
            raw = json.loads(serving.read_text())
        except json.JSONDecodeError as exc:
            raw = None
            problems.append(f"model_artifacts/serving.json: not valid JSON ({exc.msg} at line {exc.lineno})")
        if raw is not None and not isinstance(raw, dict):
            problems.append("model_artifacts/serving.json: must be an object keyed by engine (vllm, lmi, tgi)")
        elif raw is not None:
            for engine, env in raw.items():
                if engine.startswith("_"):
                    continue  # comments
                if engine not in ENGINES:
                    problems.append(
                        f"model_artifacts/serving.json: {engine!r} is not an engine; accepted: {', '.join(ENGINES)}"
                    )
                elif not isinstance(env, dict) or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
                    problems.append(
                        f"model_artifacts/serving.json: {engine!r} must map environment names to scalar values"
                    )
                else:
                    overrides[engine] = {str(k): _env_value(v) for k, v in env.items()}
    adapters: list[str] = []
    ranks: dict[str, int] = {}
    adapters_dir = root / "adapters"
    if adapters_dir.is_dir():
        for child in sorted(adapters_dir.iterdir()):
            if not child.is_dir():
                continue
            if not _ADAPTER_NAME.match(child.name):
                problems.append(
                    f"model_artifacts/adapters/{child.name}: adapter names use letters, digits, '.', '_' and '-' (max 63)"
                )
            elif not (child / "adapter_config.json").is_file():
                problems.append(
                    f"model_artifacts/adapters/{child.name}: no adapter_config.json (expected a PEFT LoRA adapter folder)"
                )
            else:
                rank, problem = _adapter_rank(child)
                if problem:
                    problems.append(problem)
                else:
                    adapters.append(child.name)
                    ranks[child.name] = rank
    if problems:
        raise SettingsError(problems)
    return ModelArtifacts(root, tuple(adapters), overrides, ranks)


# PEFT's LoraConfig default rank, used when adapter_config.json leaves `r` out
# (huggingface/peft src/peft/tuners/lora/config.py: `r: int = field(default=8, ...)`).
PEFT_DEFAULT_LORA_RANK = 8


def _adapter_rank(adapter: Path) -> tuple[int, str | None]:
    """The largest LoRA rank in a PEFT adapter_config.json: `r` (PEFT's default when absent),
    or a larger per-module `rank_pattern` value; engines must reserve at least this rank."""
    from ownllm.engines import VLLM_LORA_RANKS

    where = f"model_artifacts/adapters/{adapter.name}/adapter_config.json"
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        return 0, f"{where}: not readable JSON ({exc})"
    if not isinstance(config, dict):
        return 0, f"{where}: must be a JSON object (a PEFT LoRA config)"
    r = config.get("r", PEFT_DEFAULT_LORA_RANK)
    pattern = config.get("rank_pattern")
    values = [r, *(pattern.values() if isinstance(pattern, dict) else ())]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return 0, f"{where}: r={r!r} (and any rank_pattern values) must be positive whole numbers"
    rank = max(v for v in values if isinstance(v, int))
    if rank > VLLM_LORA_RANKS[-1]:
        return 0, f"{where}: rank {rank} is above the largest LoRA rank vLLM serves ({VLLM_LORA_RANKS[-1]})"
    return rank, None


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_compatible(settings: Settings, artifacts: ModelArtifacts) -> None:
    """Adapters are mounted as the model data, so they cannot share it with s3:// weights."""
    if settings.model_from_s3 and artifacts.adapters:
        raise SettingsError(
            [
                f"model_artifacts/adapters: {len(artifacts.adapters)} adapter(s) found, but model_id "
                f"{settings.model_id!r} is an s3:// prefix; adapters are packaged only with Hub weights. "
                "Move them under that prefix's adapters/ folder, or use a Hugging Face model id."
            ]
        )
