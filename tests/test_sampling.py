"""One distribution for sampling and learning: what `generate` samples from is what PPO learns from."""
import random

import pytest
import torch

from trainer.config import TrainConfig
from trainer.policy import generate, response_logprobs, sampling_distribution
from trainer.ppo import PPOTrainer
from trainer.sampling import SamplingDistribution, log_probs_of
from trainer.scorer import Scores
from trainer.tasks.arithmetic_task import ArithmeticTask


def make_trainer(seed=0, **hyper):
    torch.manual_seed(seed)
    task = ArithmeticTask(model_size="2x64", step="random", seed=seed)
    tokenizer, lm = task.load()
    config = TrainConfig(**(dict(batch_size=32, mini_batch_size=8, lr=3e-4) | hyper))
    return PPOTrainer(task, tokenizer, lm, config, torch.device("cpu"))


def test_ppo_logprobs_are_those_of_the_distribution_generate_sampled_from():
    """pad and unk banned, stop tokens banned for the first 3 positions, temperature 0.7: the
    log-probs PPO uses for the sampled tokens equal those of generate's processed scores."""
    trainer = make_trainer()
    tokenizer = trainer.tokenizer
    distribution = sampling_distribution(tokenizer, trainer.task.stop_token_ids(tokenizer), 3, 0.7)
    assert distribution.banned_ids == tuple(sorted((tokenizer.pad_token_id, tokenizer.unk_token_id)))
    prompts = [p.text for p in trainer.task.prompts(24, random.Random(1))]
    gen = generate(trainer.policy.lm, tokenizer, prompts, distribution, 8, torch.device("cpu"), keep_scores=True)
    sampled_from = torch.stack(gen.scores, dim=1)  # [B, R, V]: what generate drew each token from
    response = gen.sequences[:, gen.prompt_len:]
    expected = log_probs_of(sampled_from, response)
    with torch.no_grad():
        logits, _ = trainer.policy(gen.sequences, gen.attention_mask, gen.response_len)
        _, ours = response_logprobs(logits, gen.response, distribution, gen.response_mask)
    mask = gen.response_mask.bool()
    assert torch.allclose(ours[mask], expected[mask], atol=1e-5)
    # The rules themselves: banned tokens never, stops not before position 3.
    assert torch.isinf(sampled_from[..., list(distribution.banned_ids)]).all()
    assert torch.isinf(sampled_from[:, :3, list(distribution.stop_ids)]).all()
    assert not gen.is_stop[:, :3].any()


def test_generate_says_nothing_false_about_a_missing_attention_mask():
    """Rows that stop early end in pad tokens, on which transformers 5's decode step warns of a missing
    attention mask that generate() did pass. The warning is filtered there, and nothing else is."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # emitted once per process, whichever test came first
    torch.manual_seed(0)
    task = ArithmeticTask(model_size="2x64")  # the last step: prompts of one length, so no padding
    tokenizer, lm = task.load()
    distribution = sampling_distribution(tokenizer, task.stop_token_ids(tokenizer), 1, 1.0)
    prompts = [p.text for p in task.prompts(64, random.Random(2))]
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        gen = generate(lm, tokenizer, prompts, distribution, 16, torch.device("cpu"))
    finally:
        logger.removeHandler(handler)
    assert (gen.response_mask == 0).any(), "no row stopped early: the case is not exercised"
    assert not [m for m in messages if "attention_mask" in m], messages
    assert not logger.filters


def test_top_k_and_top_p_follow_transformers_semantics():
    logits = torch.tensor([[[3.0, 2.0, 1.0, 0.0, -1.0]]])
    top_k = SamplingDistribution(top_k=2).logits(logits)
    assert torch.isfinite(top_k).tolist() == [[[True, True, False, False, False]]]
    from transformers import TopPLogitsWarper

    nucleus = SamplingDistribution(top_p=0.8).logits(logits)
    reference = TopPLogitsWarper(0.8)(None, logits[:, 0])
    assert torch.equal(torch.isfinite(nucleus[:, 0]), torch.isfinite(reference))


def test_first_minibatch_of_the_first_epoch_has_ratio_exactly_one():
    trainer = make_trainer()
    rollout = trainer.rollout(trainer.task.prompts(32, random.Random(0)))
    scores = Scores([0.5] * 32, [True] * 32)
    mask = rollout.gen.response_mask
    advantages, returns, _ = trainer.advantages(rollout, scores, mask)
    terms = trainer.loss_terms(rollout, torch.randperm(32)[:8], advantages, returns, mask)
    assert terms["policy/ratio_max"].item() == 1.0
    assert terms["policy/approx_kl"].item() == 0.0 and terms["policy/clip_fraction"].item() == 0.0


def test_dropout_is_off_in_every_pass():
    trainer = make_trainer()
    assert trainer.policy.lm.config.resid_pdrop > 0  # GPT-2's config asks for dropout...
    dropouts = [m for m in trainer.policy.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.p == 0.0 for m in dropouts)  # ...and no pass applies it
    trainer.policy.train()
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    assert torch.equal(trainer.policy(ids, mask, 2)[0], trainer.policy(ids, mask, 2)[0])


def test_no_learning_term_moves_probability_onto_tokens_the_sampler_never_emits():
    """Every term's gradient w.r.t. the logits of banned tokens (and of stop tokens where stopping
    is not allowed) is exactly zero: the update cannot raise their probability."""
    trainer = make_trainer(ent_coef=0.3, bent_coef=0.3)
    rollout = trainer.rollout(trainer.task.prompts(16, random.Random(3)))
    scores = Scores([random.Random(i).random() for i in range(16)], [True] * 16)
    mask = rollout.gen.response_mask
    advantages, returns, _ = trainer.advantages(rollout, scores, mask)
    captured = {}

    def keep_logits(module, inputs, output):
        output.retain_grad()
        captured["logits"] = output

    handle = trainer.policy.lm.lm_head.register_forward_hook(keep_logits)
    try:
        terms = trainer.loss_terms(rollout, torch.arange(16), advantages, returns, mask)
        terms["loss/total"].backward()
    finally:
        handle.remove()
    grad = captured["logits"].grad[:, :-1]  # the forward keeps only the response states' logits (and one more)
    distribution = trainer.distribution
    assert grad.abs().sum() > 0
    assert grad[..., list(distribution.banned_ids)].abs().max() == 0
    assert grad[:, : distribution.min_new_tokens, list(distribution.stop_ids)].abs().max() == 0


@pytest.mark.parametrize("states", ["all", "last"])
def test_logged_entropies_describe_the_sampling_distribution(states):
    trainer = make_trainer(bent_states=states)
    rollout = trainer.rollout(trainer.task.prompts(16, random.Random(4)))
    mask = rollout.gen.response_mask
    advantages, returns, _ = trainer.advantages(rollout, Scores([0.3] * 16, [True] * 16), mask)
    terms = trainer.loss_terms(rollout, torch.arange(16), advantages, returns, mask)
    with torch.no_grad():
        logits, _ = trainer.policy(rollout.gen.sequences, rollout.gen.attention_mask, rollout.gen.response_len)
        sampler = trainer.distribution.logits(logits)
        probs = torch.softmax(sampler, -1)
        logp = torch.log_softmax(sampler, -1).nan_to_num(neginf=0.0)
        per_state = -(probs * logp).sum(-1)
    assert terms["entropy/token"].item() == pytest.approx((per_state * mask).sum().item() / mask.sum().item(), rel=1e-5)
