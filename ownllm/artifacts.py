"""What `model_artifacts/` holds: engine serving overrides and optional LoRA adapters.

Layout (documented in model_artifacts/README.md):
    model_artifacts/serving.json          {"vllm": {ENV: value}, "lmi": {...}, "tgi": {...}}
    model_artifacts/adapters/<name>/      one LoRA adapter per folder (adapter_config.json + weights)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ownllm.settings import ENGINES, DuplicateKeyError, Settings, SettingsError, unique_json_object

_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# A SageMaker container's Environment map: keys match [a-zA-Z_][a-zA-Z0-9_]*, and each key and value
# is at most 1024 bytes (ContainerDefinition, Environment:
# https://docs.aws.amazon.com/sagemaker/latest/dg/API_ContainerDefinition.html).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_MAX_BYTES = 1024
_SERVING = "model_artifacts/serving.json"


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
    if serving.is_dir():
        problems.append(f"{_SERVING}: is a folder; it must be a JSON file")
    elif serving.is_file():
        overrides = _serving_overrides(serving, problems)
    adapters: list[str] = []
    ranks: dict[str, int] = {}
    adapters_dir = root / "adapters"
    if adapters_dir.exists() and not adapters_dir.is_dir():
        problems.append("model_artifacts/adapters: is a file; it must be a folder of adapter folders")
    elif (adapters_dir / "adapter_config.json").is_file():  # one adapter unpacked straight into adapters/
        problems.append(
            "model_artifacts/adapters/adapter_config.json: an adapter goes in its own folder, named as the "
            "adapter: adapters/<name>/adapter_config.json (and its weights)"
        )
    elif adapters_dir.is_dir():
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


def _serving_overrides(path: Path, problems: list[str]) -> dict[str, dict[str, str]]:
    """serving.json's {engine: {ENV: value}}; each problem is appended as one line."""
    raw: object = None
    try:
        raw = json.loads(
            path.read_bytes().decode("utf-8"), object_pairs_hook=unique_json_object, parse_constant=_no_constant
        )
    except UnicodeDecodeError as exc:
        problems.append(f"{_SERVING}: not UTF-8 text (byte {exc.start})")
        return {}
    except DuplicateKeyError as exc:
        problems.append(
            f"{_SERVING}: key {str(exc)!r} appears twice in one object; JSON readers keep only the last, so say it once"
        )
        return {}
    except json.JSONDecodeError as exc:
        problems.append(f"{_SERVING}: not valid JSON ({exc.msg} at line {exc.lineno})")
        return {}
    except ValueError as exc:
        problems.append(f"{_SERVING}: not valid JSON ({exc})")
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{_SERVING}: must be an object keyed by engine ({', '.join(ENGINES)})")
        return {}
    overrides: dict[str, dict[str, str]] = {}
    for engine, env in raw.items():
        if engine.startswith("_"):
            continue  # comments
        if engine not in ENGINES:
            problems.append(f"{_SERVING}: {engine!r} is not an engine; accepted: {', '.join(ENGINES)}")
        elif not isinstance(env, dict) or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
            problems.append(f"{_SERVING}: {engine!r} must map environment names to scalar values")
        else:
            found = [_env_problem(engine, name, value) for name, value in env.items()]
            problems.extend(p for p in found if p)
            if not any(found):
                overrides[engine] = {name: _env_value(value) for name, value in env.items()}
    return overrides


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number; give a finite number")


def _env_problem(engine: str, name: str, value: object) -> str | None:
    where = f"{_SERVING}: {engine}.{name}" if name else f"{_SERVING}: {engine}"
    if not _ENV_NAME.fullmatch(name) or len(name.encode()) > ENV_MAX_BYTES:
        return (
            f"{_SERVING}: {engine}: {name!r} is not an environment variable name (a letter or '_', then letters, "
            f"digits and '_', at most {ENV_MAX_BYTES} bytes: SageMaker's rule)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value!r} is not a finite number"
    if len(_env_value(value).encode()) > ENV_MAX_BYTES:
        return f"{where}: the value is {len(_env_value(value).encode())} bytes; SageMaker takes at most {ENV_MAX_BYTES}"
    if "\x00" in _env_value(value):
        return f"{where}: the value holds a NUL character, which no environment variable can"
    return None


# PEFT's LoraConfig default rank, used when adapter_config.json leaves `r` out
# (huggingface/peft src/peft/tuners/lora/config.py: `r: int = field(default=8, ...)`).
PEFT_DEFAULT_LORA_RANK = 8


def _adapter_rank(adapter: Path) -> tuple[int, str | None]:
    """The largest LoRA rank in a PEFT adapter_config.json: `r` (PEFT's default when absent),
    or a larger per-module `rank_pattern` value; engines must reserve at least this rank."""
    from ownllm.engines import VLLM_LORA_RANKS

    where = f"model_artifacts/adapters/{adapter.name}/adapter_config.json"
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(), object_pairs_hook=unique_json_object)
    except DuplicateKeyError as exc:
        return (
            0,
            f"{where}: key {str(exc)!r} appears twice in one object; JSON readers keep only the last, so say it once",
        )
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
