"""Model loading for every trainer: LoRA adapters (peft), k-bit base models (bitsandbytes),
gradient checkpointing, the KL reference, and checkpoints of adapters.

This is the one place that knows how a causal LM is turned into the model a trainer trains:
    tokenizer, lm = task.load(**pretrained_kwargs(options))   # k-bit happens at load time
    lm = prepare(lm, options, adapters)                       # k-bit prep, checkpointing, LoRA
`reference_policy(lm)` gives the frozen initial policy for the KL penalty: with LoRA it is the
same model with its adapters disabled, never a second copy of the base weights.
"""
from __future__ import annotations

import copy
import pathlib

import torch

from reward_contract.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"


def is_peft(lm) -> bool:
    return hasattr(lm, "disable_adapter") and hasattr(lm, "peft_config")


def check(options) -> None:
    """Start-up checks of the model flags; each error says what to change."""
    if options.peft == "lora":
        if options.lora_r <= 0 or options.lora_alpha <= 0:
            raise ConfigError(f"--lora-r and --lora-alpha must be > 0, got {options.lora_r} and {options.lora_alpha}")
        if not 0 <= options.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {options.lora_dropout}")
    elif options.lora_target_modules:
        raise ConfigError("--lora-target-modules needs --peft lora")
    if options.load_in == "none":
        return
    if options.peft != "lora":
        raise ConfigError(f"--load-in {options.load_in} trains adapters over a frozen k-bit base: add --peft lora")
    if not options.model:
        raise ConfigError(f"--load-in {options.load_in} quantizes a pretrained model: pass --model NAME_OR_PATH")


def check_environment(options) -> None:
    """What the flags need of this machine (a GPU, an optional package): checked as a run starts."""
    if options.load_in != "none":
        _require_bitsandbytes(options.load_in)
    vllm = getattr(options, "vllm", "off")
    if vllm != "off":
        if not torch.cuda.is_available():
            raise ConfigError(f"--vllm {vllm} needs a CUDA GPU; on this machine leave --vllm off")
        try:
            import vllm as _  # noqa: F401
        except ImportError:
            raise ConfigError(f"--vllm {vllm} needs vLLM: pip install 'rlpr[vllm]'") from None


def _require_bitsandbytes(load_in: str) -> None:
    if not torch.cuda.is_available():
        raise ConfigError(f"--load-in {load_in} needs a CUDA GPU (bitsandbytes' k-bit kernels run there); "
                          "on this machine drop --load-in and train LoRA in full precision")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError(f"--load-in {load_in} needs bitsandbytes: pip install 'rlpr[gpu]' "
                          "(or pip install bitsandbytes)") from None


def pretrained_kwargs(options) -> dict:
    """Keyword arguments for `from_pretrained`: the quantization config of --load-in."""
    if options.load_in == "none":
        return {}
    from transformers import BitsAndBytesConfig

    if options.load_in == "8bit":
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:  # QLoRA's recipe: NF4 weights, double quantization, bf16 compute
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": quantization, "device_map": {"": torch.cuda.current_device()},
            "dtype": torch.bfloat16}


def lora_config(options):
    """The LoraConfig of the flags (also what TRL's GRPO/RLOO get as `peft_config`); None without --peft."""
    if options.peft != "lora":
        return None
    from peft import LoraConfig

    targets = [m.strip() for m in options.lora_target_modules.split(",") if m.strip()] or None
    return LoraConfig(task_type="CAUSAL_LM", r=options.lora_r, lora_alpha=options.lora_alpha,
                      lora_dropout=options.lora_dropout, target_modules=targets)


def enable_gradient_checkpointing(lm) -> None:
    """Non-reentrant checkpointing: recompute each block's activations in backward. Transformers only
    checkpoints in training mode; the trainers keep dropout at 0, so training mode changes nothing else."""
    kwargs = {"use_reentrant": False}
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name is deprecated there
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    lm.config.use_cache = False


def prepare(lm, options, adapters: str = "", wrap_lora: bool = True):
    """The model a trainer trains: k-bit prepared, checkpointed, and wrapped with LoRA adapters, new
    or (`adapters`, a checkpoint directory) restored trainable. `wrap_lora=False` leaves LoRA to
    the caller (TRL's trainers take `lora_config(...)` themselves)."""
    if options.load_in != "none":
        from peft import prepare_model_for_kbit_training

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=options.gradient_checkpointing,
                                             gradient_checkpointing_kwargs={"use_reentrant": False})
    if options.gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    if options.peft != "lora" or not wrap_lora:
        return lm
    from peft import PeftModel, get_peft_model

    if adapters:
        return PeftModel.from_pretrained(lm, adapters, is_trainable=True)
    try:
        return get_peft_model(lm, lora_config(options))
    except ValueError as exc:  # peft knows no default target modules for this architecture
        raise ConfigError(f"--peft lora: {exc}; name the layers with --lora-target-modules, e.g. q_proj,v_proj") from exc


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a trainer's model to its device. A k-bit base was placed by `from_pretrained` and cannot be
    moved (bitsandbytes refuses), so then only the rest (a value head) moves, to the base's device."""
    lm = getattr(module, "lm", module)
    if getattr(lm, "is_quantized", False) or getattr(lm, "is_loaded_in_4bit", False) \
            or getattr(lm, "is_loaded_in_8bit", False):
        for name, child in module.named_children():
            if child is not lm:
                child.to(device)
        return module
    return module.to(device)


def holds_adapters(path: str | pathlib.Path) -> bool:
    return (pathlib.Path(path) / ADAPTER_CONFIG).exists()


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def make_optimizer(params: list[torch.nn.Parameter], lr: float, eps: float = 1e-5) -> torch.optim.Optimizer:
    """Adam in its fastest form for the device: fused where torch has a fused kernel for every
    parameter (CPU and CUDA floating point), else the multi-tensor version. On a CPU the
    per-tensor default is ~4x slower at GPT-2 124M."""
    fusable = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    if fusable:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)


class AdapterDisabledReference:
    """The initial policy of a LoRA model: the same weights, with the adapters switched off."""

    def __init__(self, lm):
        self.lm = lm

    def __call__(self, **inputs):
        with self.lm.disable_adapter():
            return self.lm(**inputs)


def reference_policy(lm):
    """The frozen initial policy for the KL penalty. A full fine-tune needs a frozen copy; a LoRA model
    is its own reference with adapters disabled (no second set of base weights)."""
    if is_peft(lm):
        return AdapterDisabledReference(lm)
    return copy.deepcopy(lm).eval().requires_grad_(False)
