import torch
from transformers import LlamaConfig, LlamaForCausalLM

from safeneuron_trl.masking import MaskedOptimizer, NeuronAblation, frozen_slices, install_gradient_masks

PER_LAYER = [[1, 4], [], [0, 5, 6]]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=8, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    return LlamaForCausalLM(config).float()


def frozen_mask(name, shape, train_only):
    mask = torch.zeros(shape, dtype=torch.bool)
    parts = name.split(".")
    if "mlp" in parts:
        layer, role = int(parts[2]), parts[4]
        index = torch.tensor(PER_LAYER[layer], dtype=torch.long)
        if len(index):
            if role == "down_proj":
                mask[:, index] = True
            else:
                mask[index, :] = True
        return ~mask if train_only else mask
    return mask | train_only


def train(model, train_only, kind, steps=5):
    slices, _ = frozen_slices(model, PER_LAYER, train_only)
    install_gradient_masks(slices)
    named = list(model.named_parameters())
    optimizer = MaskedOptimizer(named, slices, kind, lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
    return optimizer


def check(train_only, kind):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, train_only, kind)
    moved = 0
    for name, p in model.named_parameters():
        mask = frozen_mask(name, p.shape, train_only)
        after = p.detach()
        assert torch.equal(after[mask].view(torch.int32), before[name][mask].view(torch.int32)), name
        moved += int((after[~mask] != before[name][~mask]).sum())
    assert moved > 0


def test_adamw_with_weight_decay_leaves_frozen_slices_bit_identical():
    check(train_only=False, kind="adamw")


def test_sgd_with_l2_leaves_frozen_slices_bit_identical():
    check(train_only=False, kind="sgd")


def test_sn_tune_trains_only_the_neuron_slices():
    check(train_only=True, kind="adamw")


def test_adam_moments_of_frozen_slices_stay_zero():
    model = tiny_model()
    optimizer = train(model, False, "adamw", steps=3)
    for name, p in model.named_parameters():
        mask = frozen_mask(name, p.shape, False)
        if mask.any():
            state = optimizer.state[p]
            assert not state["exp_avg"][mask].any() and not state["exp_avg_sq"][mask].any()
            assert state["exp_avg"][~mask].any()


def test_unmasked_optimizer_matches_torch_adamw():
    # Without frozen slices, the masked optimizer is PyTorch's AdamW (same decay groups).
    ours, theirs = tiny_model(), tiny_model()
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(2))
    a = MaskedOptimizer(list(ours.named_parameters()), [], "adamw", lr=1e-2, weight_decay=0.1)
    decay = [p for n, p in theirs.named_parameters() if "norm" not in n]
    rest = [p for n, p in theirs.named_parameters() if "norm" in n]
    b = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-2,
                          foreach=False)
    for _ in range(4):
        for model, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=name)


def test_non_finite_gradients_skip_the_step():
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = MaskedOptimizer(list(model.named_parameters()), [], "adamw", lr=1e-2, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    next(model.parameters()).grad[0, 0] = float("nan")
    optimizer.step()
    assert optimizer.last_step_skipped and optimizer.skipped_steps == 1
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])


def test_gradient_masks_zero_exactly_the_frozen_slices():
    model = tiny_model()
    slices, _ = frozen_slices(model, PER_LAYER, False)
    install_gradient_masks(slices)
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(3))
    model(input_ids=ids, labels=ids).loss.backward()
    for name, p in model.named_parameters():
        mask = frozen_mask(name, p.shape, False)
        assert not p.grad[mask].any(), name
        assert p.grad[~mask].any(), name


def test_ablation_equals_zeroed_down_proj_columns():
    model, pruned = tiny_model(), tiny_model()
    with torch.no_grad():
        for layer, neurons in zip(pruned.model.layers, PER_LAYER):
            layer.mlp.down_proj.weight[:, neurons] = 0
    ablation = NeuronAblation(model, PER_LAYER)
    ids = torch.randint(0, 40, (1, 10), generator=torch.Generator().manual_seed(4))
    intact = model(input_ids=ids).logits
    ablation.active = True
    ablated = model(input_ids=ids).logits
    torch.testing.assert_close(ablated, pruned(input_ids=ids).logits, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ablated, intact)
    ablation.active = False
    torch.testing.assert_close(model(input_ids=ids).logits, intact, rtol=0, atol=0)
