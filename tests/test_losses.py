"""Loss terms checked numerically against hand computations."""
import math

import pytest
import torch

from trainer import losses


def naive_batch_entropy(logits, mask):
    probs = torch.softmax(logits.double(), -1)
    pbar = (probs * mask.double().unsqueeze(-1)).sum((0, 1)) / mask.sum()
    return -(pbar * pbar.log()).sum()


def test_batch_entropy_by_hand():
    # Two states: one certain of token 0, one certain of token 1 -> pbar = (1/2, 1/2), H = log 2.
    logits = torch.tensor([[[50.0, -50.0], [-50.0, 50.0]]])
    mask = torch.ones(1, 2)
    assert losses.batch_entropy(logits, mask).item() == pytest.approx(math.log(2), abs=1e-6)
    # Yet each state alone has ~zero entropy: batch entropy rewards diversity across states.
    assert losses.token_entropy(logits, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_entropy_equals_entropy_of_mean_and_bounds_mean_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    got = losses.batch_entropy(logits, mask, chunk=4)
    assert got.item() == pytest.approx(naive_batch_entropy(logits, mask).item(), rel=1e-5)
    assert got.item() >= losses.token_entropy(logits, mask).item()


def test_batch_entropy_ignores_masked_states():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 7)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float32)
    noisy = logits.clone()
    noisy[mask == 0] = 1000 * torch.randn_like(noisy[mask == 0])
    assert losses.batch_entropy(noisy, mask).item() == pytest.approx(losses.batch_entropy(logits, mask).item())


def test_batch_entropy_gradient_matches_autograd_of_naive_version():
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 6, dtype=torch.double, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.double)
    torch.autograd.gradcheck(lambda x: losses.batch_entropy(x, mask, chunk=2), (logits,))
    ours = torch.autograd.grad(losses.batch_entropy(logits, mask), logits)[0]
    naive = torch.autograd.grad(naive_batch_entropy(logits, mask), logits)[0]
    assert torch.allclose(ours, naive, atol=1e-10)


def test_answer_state_is_the_state_that_emits_the_answer_not_the_stop():
    """Responses `27 =` and `23 + 4 =` (stop token `=`), and one that is a stop alone: the
    authors' batch entropy uses the state whose next token is the answer."""
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    is_stop = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)
    keep = losses.answer_state_mask(mask, is_stop)
    assert keep.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    logits = torch.randn(3, 4, 5)
    expected = naive_batch_entropy(logits, keep).item()
    assert losses.batch_entropy(logits, keep).item() == pytest.approx(expected, rel=1e-6)


def test_token_entropy_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1.0, 1e-12, 1e-12]]]))
    mask = torch.tensor([[1.0, 0.0]])
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert losses.token_entropy(logits, mask).item() == pytest.approx(expected, rel=1e-6)


def test_clipped_policy_loss_clips():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[2.0, 0.5]]))  # ratios 2 and 0.5
    advantages = torch.tensor([[1.0, -1.0]])
    loss, clip_fraction = losses.clipped_policy_loss(new, old, advantages, torch.ones(1, 2), clip=0.2)
    # token 1: max(-2, -1.2) = -1.2 ; token 2: max(0.5, 0.8) = 0.8
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert clip_fraction.item() == 1.0


def test_dual_clip_bounds_negative_advantage_tokens():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[100.0, 100.0]]))  # ratio 100: a token the behaviour policy rarely chose
    advantages = torch.tensor([[-1.0, 1.0]])
    plain, _ = losses.clipped_policy_loss(new, old, advantages, torch.tensor([[1.0, 0.0]]), clip=0.2)
    capped, _ = losses.clipped_policy_loss(new, old, advantages, torch.tensor([[1.0, 0.0]]), clip=0.2, dual_clip=3.0)
    assert plain.item() == pytest.approx(100.0) and capped.item() == pytest.approx(3.0)
    positive, _ = losses.clipped_policy_loss(new, old, advantages, torch.tensor([[0.0, 1.0]]), clip=0.2, dual_clip=3.0)
    assert positive.item() == pytest.approx(-1.2)  # positive advantages are untouched


def test_gae_with_gamma_one_and_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.1, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = losses.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert advantages[0].tolist() == pytest.approx([0.5, 0.8, 0.9, 0.0])
    assert returns[0, :3].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_masked_whiten():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    white = losses.masked_whiten(values, mask)
    assert white[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert white[0, 3].item() == 0.0


def test_batch_entropy_keeps_only_o_vocab_memory_beyond_the_logits():
    """Autograd must save the logits themselves and O(V) more, not a [B*T, V] softmax."""
    torch.manual_seed(3)
    B, T, V = 4, 64, 512
    logits = torch.randn(B, T, V, requires_grad=True)
    mask = torch.ones(B, T)
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = losses.batch_entropy(logits, mask, chunk=16)
    new_storage = {t.untyped_storage().data_ptr(): t.numel() for t in saved
                   if t.untyped_storage().data_ptr() != logits.untyped_storage().data_ptr()}
    # A few V-vectors (pbar, its clamp and log) and the row weights/indices; a [B*T, V] softmax is 64x more.
    assert sum(new_storage.values()) <= 8 * V + 2 * B * T
    value.backward()
    assert logits.grad.shape == logits.shape and torch.isfinite(logits.grad).all()


def test_entropies_of_a_distribution_with_banned_tokens_have_finite_gradients():
    """The sampler bans tokens with -inf logits; p log p must be 0 there, with gradient 0, not NaN."""
    logits = torch.tensor([[[1.0, 2.0, float("-inf")], [0.5, float("-inf"), float("-inf")]]], requires_grad=True)
    mask = torch.ones(1, 2)
    token = losses.token_entropy(logits, mask)
    batch = losses.batch_entropy(logits, mask)
    p = torch.softmax(torch.tensor([1.0, 2.0]), -1)
    assert token.item() == pytest.approx(-(p * p.log()).sum().item() / 2, rel=1e-6)
    (token + batch).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0, 2] == 0 and logits.grad[0, 1].abs().sum() == 0  # a one-token support has no gradient


def test_an_exploding_log_ratio_is_clamped_before_exp():
    old = torch.tensor([[-200.0, 0.0]])  # a token the behaviour policy all but never chose
    new = torch.tensor([[0.0, 0.0]])
    advantages = torch.tensor([[-1.0, 1.0]])
    loss, _ = losses.clipped_policy_loss(new, old, advantages, torch.ones(1, 2), clip=0.2)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx((math.exp(losses.LOG_RATIO_LIMIT) - 1.0) / 2, rel=1e-5)
