"""The arithmetic data generator and its word-level tokenizer."""
import random

from reward_service.client import LocalRewardClient
from reward_service.types import RewardItem
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
