"""The neuron freeze, SN-Tune's inverse freeze and the ablation, on a transformers causal LM.

Neuron j of layer l is row j of `mlp.gate_proj.weight` and `mlp.up_proj.weight` and column j of
`mlp.down_proj.weight` (the input of down_proj). A frozen slice must stay bit-identical: its gradient is zeroed by
a tensor hook during backward (before DDP/DeepSpeed reduce it and before gradient clipping measures the norm, as
Swift masks before its norm), and the optimizer neither decays it nor moves its moments.
"""

import math
import re

import torch

MLP_PARAMETER = re.compile(r"(?:^|\.)layers\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.(weight|bias)$")


class FrozenSlice:
    """Indices `index` along `dim` of parameter `name` never change."""

    def __init__(self, name, param, dim, index):
        self.name, self.param, self.dim, self.index = name, param, dim, index


def decoder_layers(model):
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    if not hasattr(base, "layers"):
        raise ValueError(f"{type(model).__name__}: no decoder layers found (expected model.model.layers)")
    return base.layers


def check_neurons_fit(model, layers, width, source):
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if layers != config.num_hidden_layers:
        raise ValueError(f"{source}: field 'layers' = {layers}, but the model has {config.num_hidden_layers} layers")
    if width != config.intermediate_size:
        raise ValueError(f"{source}: field 'intermediate_size' = {width}, but the model's is "
                         f"{config.intermediate_size}")


def frozen_slices(model, per_layer, train_only):
    """The frozen slices. Freeze mode: the neurons' rows/columns. SN-Tune: the complement within gate/up/down;
    every other parameter gets requires_grad=False (returned as the second list)."""
    slices, untouched = [], []
    for name, param in model.named_parameters():
        match = MLP_PARAMETER.search(name)
        if match is None:
            if train_only:
                untouched.append(name)
                param.requires_grad_(False)
            continue
        layer, role, kind = int(match.group(1)), match.group(2), match.group(3)
        if role == "down_proj" and kind == "bias":
            # down_proj's bias belongs to no neuron: trainable when freezing, frozen for SN-Tune.
            if train_only:
                untouched.append(name)
                param.requires_grad_(False)
            continue
        dim = 1 if role == "down_proj" else 0
        width = param.shape[dim]
        neurons = per_layer[layer] if layer < len(per_layer) else []
        if train_only:
            keep = sorted(set(range(width)) - set(neurons))
            if not neurons:
                untouched.append(name)
                param.requires_grad_(False)
                continue
        else:
            keep = list(neurons)
            if not keep:
                continue
        index = torch.tensor(keep, dtype=torch.long, device=param.device)
        slices.append(FrozenSlice(name, param, dim, index))
    return slices, untouched


def install_gradient_masks(slices):
    """Zeroes each frozen slice's gradient as autograd produces it (every micro-batch, every rank)."""
    handles = []
    for s in slices:
        def mask(grad, dim=s.dim, index=s.index):
            return grad.index_fill(dim, index.to(grad.device), 0)
        handles.append(s.param.register_hook(mask))
    return handles


class NeuronAblation:
    """Forward pre-hooks on every layer's down_proj that zero the neurons' activations while `active`."""

    def __init__(self, model, per_layer):
        self.active = False
        self.handles = []
        for layer_index, layer in enumerate(decoder_layers(model)):
            neurons = per_layer[layer_index] if layer_index < len(per_layer) else []
            if not neurons:
                continue
            index = torch.tensor(neurons, dtype=torch.long)
            self.handles.append(layer.mlp.down_proj.register_forward_pre_hook(self._hook(index)))

    def _hook(self, index):
        def zero_neurons(module, inputs):
            if not self.active:
                return None
            hidden = inputs[0]
            return (hidden.index_fill(-1, index.to(hidden.device), 0),) + tuple(inputs[1:])
        return zero_neurons

    def remove(self):
        for h in self.handles:
            h.remove()


def decays(name):
    """Swift's rule (Optimizers.swift): norms and biases are not decayed."""
    return not ("norm" in name or name.endswith(".bias"))


class MaskedOptimizer(torch.optim.Optimizer):
    """PyTorch's AdamW (single-tensor algorithm) or SGD with L2, as Sources/Alignment/Optimizers.swift runs them,
    leaving frozen slices, and their moments, untouched. A step whose gradients are not all finite is skipped
    without counting (Swift skips the update and its bias-correction step alike)."""

    def __init__(self, named_params, slices, kind, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        if kind not in ("adamw", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}")
        frozen = {id(s.param): s for s in slices}
        decay = [p for n, p in named_params if p.requires_grad and decays(n)]
        no_decay = [p for n, p in named_params if p.requires_grad and not decays(n)]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        super().__init__([g for g in groups if g["params"]], dict(lr=lr, betas=betas, eps=eps, weight_decay=0.0))
        self.kind, self.frozen = kind, frozen
        self.skipped_steps = 0
        self.last_step_skipped = False

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("MaskedOptimizer takes no closure")
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        self.last_step_skipped = not finite
        if not finite:
            self.skipped_steps += 1
            return None
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.frozen.get(id(p))
                state = self.state[p]
                saved = None
                if s is not None:
                    index = s.index.to(p.device)
                    saved = [(p, p.index_select(s.dim, index))]
                if self.kind == "sgd":
                    d = p.grad.add(p, alpha=wd) if wd != 0 else p.grad
                    p.add_(d, alpha=-lr)
                else:
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if saved is not None:
                        saved += [(state["exp_avg"], state["exp_avg"].index_select(s.dim, index)),
                                  (state["exp_avg_sq"], state["exp_avg_sq"].index_select(s.dim, index))]
                    beta1, beta2 = group["betas"]
                    state["step"] += 1
                    step = state["step"]
                    if wd != 0:
                        p.mul_(1 - lr * wd)
                    state["exp_avg"].lerp_(p.grad, 1 - beta1)
                    state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    step_size = lr / (1 - beta1 ** step)
                    denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
                    p.addcdiv_(state["exp_avg"], denom, value=-step_size)
                if saved is not None:
                    for tensor, values in saved:
                        tensor.index_copy_(s.dim, index, values)
        return None


class DeepSpeedSliceRestorer:
    """ZeRO-1/2: DeepSpeed hands the client optimizer flat fp32 partitions, so per-tensor masks cannot be applied
    inside it. Gradients are still masked by the tensor hooks (so the frozen slices' Adam moments stay exactly zero
    and their Adam update is zero); what remains is decoupled weight decay, undone after every optimizer step by
    writing the original slices back into the fp32 master copy (deepspeed.utils.safe_set_full_fp32_param, a
    collective every rank runs in the same order) and into the module's own parameter.
    UNTESTED on GPUs: this machine has none (see README)."""

    def __init__(self, slices):
        self.slices = slices
        self.originals = [s.param.detach().index_select(s.dim, s.index.to(s.param.device)).float().cpu()
                          for s in slices]

    def restore(self):
        from deepspeed.utils import safe_get_full_fp32_param, safe_set_full_fp32_param
        for s, original in zip(self.slices, self.originals):
            full = safe_get_full_fp32_param(s.param)
            index = s.index.to(full.device)
            full.index_copy_(s.dim, index, original.to(full.device))
            safe_set_full_fp32_param(s.param, full)
            with torch.no_grad():
                s.param.index_copy_(s.dim, s.index.to(s.param.device), original.to(s.param.device, s.param.dtype))
