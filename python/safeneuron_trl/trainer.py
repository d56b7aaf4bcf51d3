"""TRL's DPOTrainer with SafeNeuron's neuron freeze/ablation and `safeneuron align`'s conventions.

Where TRL's defaults differ from ours, the subclass reproduces ours:
- dataset: already tokenised and truncated by `pairs.tokenize_pairs` (TRL's `_prepare_dataset` is bypassed);
- reference: the starting policy's log-probs, computed once before training (TRL's precompute path) in one or two
  states — intact, and with the neurons ablated when the policy is ever ablated against an ablated reference
  (`--reference ablated`); each step reads the state matching its own ablation;
- data order: the Swift epoch order (`schedule.epoch_order`) through a sampler, sharded by accelerate so that
  optimizer step k covers the same pairs for any number of processes;
- RPO: TRL 1.x has no rpo_alpha; α × (mean token NLL of the micro-batch's chosen completions) is its "sft" loss
  term with weight α, switched per step for `--ablated-rpo-alpha`;
- optimizer: `MaskedOptimizer` (AdamW/SGD with Swift's decay groups and frozen slices untouched).
"""

import json
import os

import torch
from torch.utils.data import DataLoader, Sampler
from transformers import TrainerCallback
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from .masking import (DeepSpeedSliceRestorer, MaskedOptimizer, NeuronAblation, decays, frozen_slices,
                      install_gradient_masks)
from .schedule import epoch_order

REFERENCE_COLUMNS = ("ref_chosen_logps_intact", "ref_rejected_logps_intact",
                     "ref_chosen_logps_ablated", "ref_rejected_logps_ablated")


class SwiftOrderSampler(Sampler):
    """Yields `safeneuron align`'s order of the epoch the trainer is in. The epoch is read from the trainer's step
    count when iteration starts (every epoch has the same number of optimizer steps), so it does not depend on
    which wrapper forwards `set_epoch`."""

    def __init__(self, count, seed, steps_per_epoch, trainer):
        self.count, self.seed, self.steps_per_epoch, self.trainer = count, seed, steps_per_epoch, trainer

    def __iter__(self):
        epoch = self.trainer.state.global_step // self.steps_per_epoch
        return iter(epoch_order(self.seed, epoch, self.count))

    def __len__(self):
        return self.count


class StatefulReferenceCollator(DataCollatorForPreference):
    """TRL's preference collator, carrying both reference states' log-probs along."""

    def torch_call(self, examples):
        out = super().torch_call(examples)
        for key in REFERENCE_COLUMNS:
            if key in examples[0]:
                out[key] = torch.tensor([e[key] for e in examples], dtype=torch.float64)
        return out


class _StepRecorder(TrainerCallback):
    def __init__(self, trainer, path):
        self.trainer, self.path = trainer, path
        if trainer.accelerator.is_main_process:
            open(path, "w").close()

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer.slice_restorer is not None:
            self.trainer.slice_restorer.restore()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.trainer.accelerator.is_main_process or logs is None or "loss" not in logs:
            return
        step = state.global_step
        optimizer = self.trainer.masked_optimizer
        record = {"step": step, "ablated": self.trainer.ablated_steps.get(step - 1, False),
                  "skipped": bool(optimizer.last_step_skipped) if optimizer is not None else False}
        for key, value in logs.items():
            if isinstance(value, (int, float)):
                record[key] = value
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def refuse_unsupported(zero_stage, train_only, fsdp):
    if zero_stage == 3:
        raise ValueError(
            "DeepSpeed ZeRO-3 is not supported by safeneuron_trl: ZeRO-3 partitions every parameter, and the "
            "neuron freeze needs whole gate_proj rows and down_proj columns to mask and restore. Use ZeRO-2 "
            "(zero_stage: 2 in the accelerate/DeepSpeed config) or plain DDP.")
    if zero_stage is not None and train_only:
        raise ValueError(
            "--train-only-neurons (SN-Tune) is not supported under DeepSpeed: its frozen complement is nearly all "
            "of every MLP tensor, too large to restore after each step. Run SN-Tune with plain DDP (it trains "
            "only the MLP tensors, so it fits without ZeRO).")
    if fsdp:
        raise ValueError("FSDP is not supported by safeneuron_trl; use DDP or DeepSpeed ZeRO-2.")


class SafeNeuronDPOTrainer(DPOTrainer):
    def __init__(self, *, model, args, train_dataset, processing_class, per_layer, train_only, schedule,
                 reference_ablated, optimizer_kind, rpo_alpha, ablated_rpo_alpha, data_seed, metrics_path,
                 adam_betas=(0.9, 0.999), adam_epsilon=1e-8):
        plugin = args.deepspeed_plugin
        refuse_unsupported(plugin.zero_stage if plugin is not None else None, train_only, getattr(args, "fsdp", None))
        self.schedule = schedule if per_layer is not None and not train_only else None
        self.ablation = NeuronAblation(model, per_layer) if self.schedule is not None else None
        self.reference_states = ["intact"]
        if self.schedule is not None and self.schedule.ever_ablates and reference_ablated:
            self.reference_states.append("ablated")
        self.slices, self.untouched = (frozen_slices(model, per_layer, train_only) if per_layer is not None
                                       else ([], []))
        self.gradient_hooks = install_gradient_masks(self.slices)
        self.optimizer_kind, self.adam_betas, self.adam_epsilon = optimizer_kind, adam_betas, adam_epsilon
        self.rpo_alpha, self.ablated_rpo_alpha = rpo_alpha, ablated_rpo_alpha
        self.data_seed = data_seed
        self.ablated_steps = {}
        self.masked_optimizer = None
        self.slice_restorer = None
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        self.steps_per_epoch = max(1, -(-len(train_dataset) // per_step))
        collator = StatefulReferenceCollator(pad_token_id=processing_class.pad_token_id
                                             if processing_class.pad_token_id is not None
                                             else processing_class.eos_token_id)
        super().__init__(model=model, args=args, train_dataset=train_dataset, processing_class=processing_class,
                         data_collator=collator)
        if self.is_deepspeed_enabled:
            # An accelerate config can enable DeepSpeed without args.deepspeed_plugin; check what was built.
            refuse_unsupported(self.accelerator.state.deepspeed_plugin.zero_stage, train_only, None)
            if self.slices:
                self.slice_restorer = DeepSpeedSliceRestorer(self.slices)
        self.add_callback(_StepRecorder(self, metrics_path))

    # Dataset: tokenised and truncated by the bridge already.
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        missing = {"prompt_ids", "chosen_ids", "rejected_ids"} - set(dataset.column_names)
        if missing:
            raise ValueError(f"{dataset_name} dataset lacks {sorted(missing)}; tokenise it with "
                             "safeneuron_trl.pairs.tokenize_pairs")
        return dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["prompt_ids", "chosen_ids", "rejected_ids", *REFERENCE_COLUMNS]

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return SwiftOrderSampler(len(dataset), self.data_seed, self.steps_per_epoch, self)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        """Σ log p of every completion under the starting policy, per reference state, in dataset order."""
        loader = self.accelerator.prepare(DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator,
                                                     shuffle=False))
        if self.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed
            if self._precompute_engine is None:
                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            model = self._precompute_engine
        else:
            model = self.model
        columns = {}
        for state in ("intact", "ablated"):
            if state in self.reference_states:
                if self.ablation is not None:
                    self.ablation.active = state == "ablated"
                chosen, rejected = [], []
                for batch in loader:
                    c, r = self.compute_ref_log_probs(model, batch)
                    c, r = self.accelerator.gather_for_metrics((c, r))
                    chosen.append(c.double().cpu())
                    rejected.append(r.double().cpu())
                columns[state] = (torch.cat(chosen).tolist(), torch.cat(rejected).tolist())
            else:
                columns[state] = columns["intact"]
        if self.ablation is not None:
            self.ablation.active = False
        for state, (chosen, rejected) in columns.items():
            if len(chosen) != len(dataset):
                raise RuntimeError(f"reference pass returned {len(chosen)} log-probs for {len(dataset)} pairs")
            dataset = dataset.add_column(f"ref_chosen_logps_{state}", chosen)
            dataset = dataset.add_column(f"ref_rejected_logps_{state}", rejected)
        return dataset

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        named = list((model or self.model).named_parameters())
        lr, wd = self.args.learning_rate, self.args.weight_decay
        if self.is_deepspeed_enabled:
            groups = [{"params": [p for n, p in named if p.requires_grad and decays(n)], "weight_decay": wd},
                      {"params": [p for n, p in named if p.requires_grad and not decays(n)], "weight_decay": 0.0}]
            groups = [g for g in groups if g["params"]]
            if self.optimizer_kind == "sgd":
                self.optimizer = torch.optim.SGD(groups, lr=lr)
            else:
                self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=self.adam_betas, eps=self.adam_epsilon)
        else:
            self.optimizer = MaskedOptimizer(named, self.slices, self.optimizer_kind, lr, wd, self.adam_betas,
                                             self.adam_epsilon)
            self.masked_optimizer = self.optimizer
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        training = self.model.training
        step = self.state.global_step
        ablated = bool(training and self.schedule is not None and self.schedule.ablated(step))
        if training:
            self.ablated_steps[step] = ablated
        # Left on through backward: gradient checkpointing re-runs the forward (and its hooks) then.
        if self.ablation is not None:
            self.ablation.active = ablated
        state = "ablated" if ablated and "ablated" in self.reference_states else "intact"
        inputs = dict(inputs)
        inputs["ref_chosen_logps"] = inputs[f"ref_chosen_logps_{state}"]
        inputs["ref_rejected_logps"] = inputs[f"ref_rejected_logps_{state}"]
        for key in REFERENCE_COLUMNS:
            inputs.pop(key, None)
        if "sft" in self.loss_types:
            alpha = self.rpo_alpha
            if ablated and self.ablated_rpo_alpha is not None:
                alpha = self.ablated_rpo_alpha
            self.loss_weights = [alpha if t == "sft" else 1.0 for t in self.loss_types]
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def finish(self):
        for h in self.gradient_hooks:
            h.remove()
        if self.ablation is not None:
            self.ablation.active = False
            self.ablation.remove()
