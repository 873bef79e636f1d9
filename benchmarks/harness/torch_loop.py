"""The PyTorch reference loop: the recipe bert_keras trains with, in plain torch.

Shared by `torch_glue`, `torch_squad.py`, `pretraining_parity.py` and the
torch system of `compare_worker.py`, so every PyTorch figure comes from one
loop. torch and transformers are imported inside the functions: importing
this module must not load them.
"""

import contextlib
import math
import platform
import sys

# Parameters AdamW does not decay: HF Trainer's rule (biases and LayerNorm).
NO_DECAY_SUFFIXES = ("bias", "LayerNorm.weight")


def add_torch_flags(parser):
    """The flags of a torch reference script beyond its recipe."""
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help='train with torch.autocast("cpu", dtype=torch.bfloat16)',
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own choice)",
    )
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))


def set_up(args):
    """Threads, seed and quiet logging for a reference run; returns torch."""
    import torch
    import transformers

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    transformers.set_seed(args.seed)
    transformers.logging.set_verbosity_error()
    return torch


def bf16_autocast(enabled):
    """bfloat16 autocast on the CPU when `enabled`, else no context at all."""
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def create_optimizer(model, args, total_steps):
    """AdamW (eps 1e-6, no decay on biases and LayerNorm) with linear warmup
    and decay to 0, as `bert_keras.training.optimization.create_optimizer`.

    Args:
        model: a torch module.
        args: has `learning_rate`, `weight_decay` and `warmup_ratio`.
        total_steps: int, optimizer steps of the whole run.

    Returns:
        (optimizer, scheduler, warmup_steps).

    Example:

    >>> optimizer, scheduler, _ = create_optimizer(model, args, 1000)
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith(NO_DECAY_SUFFIXES) else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.learning_rate,
        betas=(0.9, 0.999),
        eps=1e-6,
    )
    # Rounded up, as transformers' TrainingArguments.get_warmup_steps.
    warmup_steps = math.ceil(args.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    return optimizer, scheduler, warmup_steps


def make_loader(dataset, tokenizer, columns, batch_size, generator=None):
    """Batches of `columns`, each padded to its own longest row (as bert_keras
    pads); shuffled with `generator` when one is given."""
    import torch
    from transformers import DataCollatorWithPadding

    dataset = dataset.remove_columns(
        [name for name in dataset.column_names if name not in columns]
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=generator is not None,
        generator=generator,
        collate_fn=DataCollatorWithPadding(tokenizer),
    )


def apply_gradients(loss, model, optimizer, scheduler=None):
    """Backward from `loss`, clipping at global norm 1.0, an AdamW step."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def train_epoch(model, loader, optimizer, scheduler, args, epoch):
    """One pass over `loader`; returns the example-weighted mean loss."""
    model.train()
    loss_sum, seen = 0.0, 0
    for step, batch in enumerate(loader):
        with bf16_autocast(args.mixed_precision):
            loss = model(**batch).loss
        apply_gradients(loss, model, optimizer, scheduler)
        size = len(batch["input_ids"])
        loss_sum += float(loss.detach()) * size
        seen += size
        if args.verbose == 1 and step % 50 == 0:
            print(
                f"epoch {epoch + 1} step {step}/{len(loader)} "
                f"loss {loss_sum / seen:.4f}",
                flush=True,
            )
    return loss_sum / seen


def run_facts(model):
    """Threads, attention kernel and versions, for a reference run's results."""
    import torch
    import transformers

    return {
        "num_threads": torch.get_num_threads(),
        "attention_implementation": model.config._attn_implementation,
        "framework_versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }


def check_no_tensorflow(script):
    """Stops a reference run that loaded TensorFlow: its threads would skew
    the timings."""
    if "tensorflow" in sys.modules:
        raise RuntimeError(f"{script} imported TensorFlow; timings would suffer")
