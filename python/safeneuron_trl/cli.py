"""`python -m safeneuron_trl align ...`: `safeneuron align` through TRL (flags, defaults and output mirror it).

Exit status: 0 done; 2 bad command line; 3 bad input file (the message names file and field); 1 anything else.
"""

import argparse
import json
import os
import shutil
import sys
import time

FLOAT_DTYPES = ("float32", "bfloat16", "float16")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m safeneuron_trl")
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("align", help="DPO with frozen + ablated neurons (or SN-Tune) in TRL's DPOTrainer")
    a.add_argument("--model", required=True, help="A Hugging Face model folder (e.g. from `safeneuron convert`).")
    a.add_argument("--pairs", required=True, help="Preference pairs (.jsonl), in any format `safeneuron align` reads.")
    a.add_argument("--output", required=True, help="The model folder to write.")
    a.add_argument("--neurons", help="A neurons.json from `safeneuron identify`.")
    a.add_argument("--neuron-set", default="union", choices=["union", "es", "sas", "topk"])
    a.add_argument("--ablate", default="always", help="always, never, or dropout:P (default: always).")
    a.add_argument("--train-only-neurons", action="store_true", help="SN-Tune: train only the neurons' slices.")
    a.add_argument("--beta", type=float, default=0.1)
    a.add_argument("--loss", default="sigmoid", choices=["sigmoid", "ipo"])
    a.add_argument("--rpo-alpha", type=float, default=0.0)
    a.add_argument("--ablated-rpo-alpha", type=float, default=None)
    a.add_argument("--reference", default="ablated", choices=["ablated", "intact"])
    a.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    a.add_argument("--lr", type=float, default=5e-6)
    a.add_argument("--weight-decay", type=float, default=0.05)
    a.add_argument("--schedule", default="cosine", choices=["constant", "linear", "cosine"])
    a.add_argument("--warmup-steps", type=int, default=0)
    a.add_argument("--epochs", type=int, default=3)
    a.add_argument("--steps", type=int, default=None)
    a.add_argument("--batch-size", type=int, default=8, help="Pairs per micro-batch per process.")
    a.add_argument("--grad-accum", type=int, default=1)
    a.add_argument("--max-grad-norm", type=float, default=1.0)
    a.add_argument("--max-length", type=int, default=512)
    a.add_argument("--seed", type=int, default=0)
    # GPU-side settings with no Swift counterpart.
    a.add_argument("--dtype", default="float32", choices=FLOAT_DTYPES,
                   help="Dtype the weights are loaded, trained and saved in (default float32, as align).")
    a.add_argument("--bf16", action="store_true", help="bf16 autocast (mixed precision) over the loaded weights.")
    a.add_argument("--gradient-checkpointing", action="store_true")
    a.add_argument("--deepspeed", default=None, help="A DeepSpeed JSON config (ZeRO-2; ZeRO-3 is refused).")
    return parser


def check_arguments(args):
    def bad(why):
        raise SystemExit(f"error: {why}")
    if not args.beta > 0:
        bad("--beta must be positive")
    for flag in ("rpo_alpha", "lr", "weight_decay", "max_grad_norm"):
        if not getattr(args, flag) >= 0:
            bad(f"--{flag.replace('_', '-')} must be ≥ 0")
    if args.ablated_rpo_alpha is not None and not args.ablated_rpo_alpha >= 0:
        bad("--ablated-rpo-alpha must be ≥ 0")
    if args.warmup_steps < 0:
        bad("--warmup-steps must be ≥ 0")
    if args.epochs <= 0:
        bad("--epochs must be positive")
    if args.steps is not None and args.steps <= 0:
        bad("--steps must be positive")
    if args.batch_size <= 0 or args.grad_accum <= 0:
        bad("--batch-size and --grad-accum must be positive")
    if args.max_length < 2:
        bad("--max-length must be ≥ 2")
    if args.seed < 0 or args.seed >= 1 << 64:
        bad("--seed must be in 0 ..< 2^64")
    if args.train_only_neurons and not args.neurons:
        bad("--train-only-neurons needs --neurons")
    if not os.path.isdir(args.model):
        bad(f"--model {args.model}: not a folder (convert GGUF files with `safeneuron convert` first)")


def align(args):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    from .masking import check_neurons_fit
    from .neurons import read_neuron_set
    from .pairs import read_pairs, tokenize_pairs
    from .schedule import AblationSchedule
    from .trainer import SafeNeuronDPOTrainer

    schedule = AblationSchedule(args.ablate, args.seed)   # parsed before any loading, like align
    per_layer = None
    if args.neurons:
        layers, width, per_layer = read_neuron_set(args.neurons, args.neuron_set)
    rows, summary = read_pairs(args.pairs)
    print(summary, file=sys.stderr)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    if per_layer is not None:
        check_neurons_fit(model, layers, width, args.neurons)
        if args.train_only_neurons and not any(per_layer):
            raise SystemExit("error: train-only mode needs a non-empty neuron set")
    vocab = model.get_input_embeddings().weight.shape[0]
    examples = tokenize_pairs(rows, tokenizer, args.pairs, args.max_length, vocab)
    dataset = Dataset.from_list(examples)

    loss_types = [args.loss]
    alphas = [args.rpo_alpha] + ([args.ablated_rpo_alpha] if args.ablated_rpo_alpha is not None else [])
    if any(a > 0 for a in alphas):
        loss_types.append("sft")
    work = args.output + ".trainer"
    config = DPOConfig(
        output_dir=work, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr, weight_decay=args.weight_decay,
        lr_scheduler_type={"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}[args.schedule],
        warmup_steps=args.warmup_steps, num_train_epochs=args.epochs, max_steps=args.steps or -1,
        max_grad_norm=args.max_grad_norm, seed=args.seed % (1 << 32), beta=args.beta, loss_type=loss_types,
        loss_weights=[1.0] * len(loss_types), precompute_ref_log_probs=True, max_length=None,
        bf16=args.bf16, fp16=False, gradient_checkpointing=args.gradient_checkpointing, logging_steps=1,
        save_strategy="no", report_to="none", remove_unused_columns=False, disable_dropout=True,
        dataloader_drop_last=False, deepspeed=args.deepspeed, use_cpu=not torch.cuda.is_available())
    metrics_path = os.path.join(work, "metrics.jsonl")
    os.makedirs(work, exist_ok=True)
    trainer = SafeNeuronDPOTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, per_layer=per_layer,
        train_only=args.train_only_neurons, schedule=schedule, reference_ablated=args.reference == "ablated",
        optimizer_kind=args.optimizer, rpo_alpha=args.rpo_alpha, ablated_rpo_alpha=args.ablated_rpo_alpha,
        data_seed=args.seed, metrics_path=metrics_path)
    started = time.time()
    trainer.train()
    trainer.finish()

    # Written beside the output and renamed over it, so a folder named OUTPUT is always complete.
    partial = args.output + ".partial"
    if trainer.accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(partial)
    if trainer.accelerator.is_main_process:
        shutil.copyfile(metrics_path, os.path.join(partial, "metrics.jsonl"))
        settings = {k: v for k, v in vars(args).items() if k != "command"}
        settings.update(trainer="trl", command_line=sys.argv, num_pairs=len(examples),
                        neuron_count=sum(map(len, per_layer)) if per_layer else 0,
                        mask_mode="trainOnly" if args.train_only_neurons else "freeze",
                        reference_states=len(trainer.reference_states), total_steps=trainer.state.max_steps,
                        steps_per_epoch=trainer.steps_per_epoch, world_size=trainer.args.world_size,
                        ablated_steps=[s for s, a in sorted(trainer.ablated_steps.items()) if a],
                        seconds=round(time.time() - started, 1))
        with open(os.path.join(partial, "training_args.json"), "w") as f:
            json.dump(settings, f, indent=2, sort_keys=True)
        if os.path.isdir(args.output):
            shutil.rmtree(args.output)
        os.replace(partial, args.output)
        shutil.rmtree(work, ignore_errors=True)
        print(f"wrote {args.output}", file=sys.stderr)
    trainer.accelerator.wait_for_everyone()
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_arguments(args)
    from .neurons import NeuronsFileError
    from .pairs import PairsFileError
    try:
        return align(args)
    except (NeuronsFileError, PairsFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except ValueError as e:
        if "--ablate" in str(e):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
