"""The arithmetic data generator and its word-level tokenizer."""
import random

import pytest

from reward_service.core.local_client import LocalRewardClient
from reward_contract.types import RewardItem
from trainer.tasks import arithmetic
from trainer.tasks.arithmetic_task import ArithmeticTask


def test_chain_sums_one_pair_per_step_and_keeps_its_value():
    rng = random.Random(3)
    for _ in range(200):
        steps = arithmetic.random_chain(rng)
        assert len(steps[0]) == 5 and all(0 <= d <= 9 for d in steps[0])
        assert [len(s) for s in steps] == [5, 4, 3, 2, 1]
        assert len({sum(s) for s in steps}) == 1 and steps[-1][0] <= arithmetic.MAX_VALUE


def test_prompts_teacher_force_the_true_chain():
    rng = random.Random(0)
    last = arithmetic.make_prompt(rng, "last")
    assert last.text.endswith(" =") and last.answer == str(last.target) and last.text.count("=") == 4
    for _ in range(50):
        p = arithmetic.make_prompt(rng, "random")
        assert p.text.split(" = ")[-1].rstrip(" =") == p.previous
        assert sum(map(int, p.answer.split("+"))) == p.target


def test_true_answers_score_one_and_copies_score_zero():
    rng = random.Random(1)
    prompts = ArithmeticTask(step="random").prompts(50, rng)
    client = LocalRewardClient()
    truth = client.score("arithmetic", [RewardItem(str(i), p.text, p.reference["answer"], p.reference)
                                        for i, p in enumerate(prompts)])
    assert all(r.reward == 1.0 for r in truth)
    copies = client.score("arithmetic", [RewardItem(str(i), p.text, p.reference["previous"], p.reference)
                                         for i, p in enumerate(prompts)])
    assert all(r.reward == 0.0 for r in copies)


def test_word_level_tokenizer_round_trips_and_saves(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = arithmetic.build_tokenizer()
    assert len(tokenizer) == 3 + 46 + 2
    text = "6 + 10 + 7 + 1 + 3 = 6 + 17 + 1 + 3 = 23 + 1 + 3 = 23 + 4 = 27"
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text.split()) and tokenizer.decode(ids) == text
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text)["input_ids"] == ids and again.padding_side == "left"
    model = arithmetic.build_model(tokenizer, n_layer=1, n_embd=32, n_head=2)
    assert model.config.n_positions == 64 and model.config.vocab_size == len(tokenizer)


def test_clean_cuts_at_the_equals_sign():
    task = ArithmeticTask()
    assert task.clean(" 23 + 4 = 27 <eos>") == "23 + 4"
    assert task.clean(" 27 <eos>") == "27"


def test_best_constant_answer_is_computed_from_the_generator():
    """Always answering 22 (or 23: the sum of five digits is symmetric about 22.5) is the trap the
    paper describes. The exact expectation agrees with sampling the task's own prompts."""
    import random

    from reward_contract.types import RewardItem
    from reward_service.core.local_client import LocalRewardClient
    from trainer.tasks.arithmetic import best_constant_answer
    from trainer.tasks.arithmetic_task import ArithmeticTask

    answer, expected = best_constant_answer()
    assert answer in (22, 23) and expected == pytest.approx(0.7559, abs=1e-4)
    prompts = ArithmeticTask(step="last").prompts(4000, random.Random(0))
    items = [RewardItem(str(i), p.text, str(answer), dict(p.reference)) for i, p in enumerate(prompts)]
    rewards = [r.reward for r in LocalRewardClient().score("arithmetic", items)]
    assert sum(rewards) / len(rewards) == pytest.approx(expected, abs=0.01)


def test_paper_preset_sets_the_authors_configuration_and_flags_override_it(tmp_path):
    import json

    from tests.test_ppo import run_cli
    from trainer.config import PRESETS, TrainConfig

    config = TrainConfig.defaults_for(["--preset", "paper"])
    assert (config.arithmetic_model_size, config.lr, config.batch_size, config.mini_batch_size, config.kl_coef,
            config.max_grad_norm, config.arithmetic_max_new_tokens) == ("12x768x12", 1.41e-5, 128, 128, "0", 0.0, 1)
    assert TrainConfig.defaults_for(["--preset=paper"]) == config and TrainConfig.defaults_for([]) is None
    result = run_cli("train", "--preset", "paper", "--steps", "1", "--batch-size", "4", "--mini-batch-size", "4",
                     "--ppo-epochs", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["preset"] == "paper" and written["batch_size"] == 4  # the flag wins over the preset
    overridden = ("batch_size", "mini_batch_size", "steps", "ppo_epochs")
    assert all(written[k] == v for k, v in PRESETS["paper"].items() if k not in overridden)
    model = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert (model["n_layer"], model["n_embd"], model["n_head"]) == (12, 768, 12)  # GPT-2 124M's shape
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["response/length"] == 1.0  # one-token answers, as the authors generated
