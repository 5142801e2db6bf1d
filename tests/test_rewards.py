"""Reward functions, the registry and option parsing, without any server."""
import math

import pytest

from reward_contract.errors import InvalidArgument, UnknownReward
from reward_service.rewards import REGISTRY, get_reward
from reward_service.rewards.arithmetic import ArithmeticOptions, parse_sum
from reward_service.core.scoring import score_items
from reward_contract.types import ItemStatus, RewardItem

from tests.helpers import save_tiny_classifier

STRICT = ArithmeticOptions()
LENIENT = ArithmeticOptions(lenient=True)


def arith(completion, previous="6 + 17 + 1 + 3", target=None, options=STRICT):
    reference = {"previous": previous} if previous is not None else {}
    if target is not None:
        reference["target"] = str(target)
    [result] = score_items(get_reward("arithmetic"), options, [RewardItem("x", "", completion, reference)])
    return result


def test_arithmetic_formula_matches_the_paper():
    assert arith("23 + 1 + 3").reward == pytest.approx(1.0)
    off_by = arith("20 + 1 + 3")  # value 24, target 27
    assert off_by.reward == pytest.approx(2 / (1 + math.exp(3 / 10)))
    assert off_by.components["abs_error"] == 3.0


def test_arithmetic_invalid_expression_scores_zero():
    for bad in ["", "23 +", "+ 4", "23 + x", "-3 + 30", "23 + 4 = 27", "2.5 + 1 + 1", "\u0661 + 2"]:
        result = arith(bad)
        assert result.ok and result.reward == 0.0 and result.components["valid"] == 0.0, bad


def test_arithmetic_strict_requires_exactly_one_plus_fewer():
    copy = arith("6 + 17 + 1 + 3")  # copying the prompt has the right value but is not a step
    assert copy.reward == 0.0 and copy.components["one_step"] == 0.0
    skip = arith("23 + 4")  # two steps at once
    assert skip.reward == 0.0
    assert arith("6 + 17 + 1 + 3", options=LENIENT).reward == pytest.approx(1.0)


def test_arithmetic_target_defaults_to_value_of_previous_and_explicit_target_wins():
    assert arith("23 + 1 + 3").components["target"] == 27.0
    assert arith("23 + 1 + 3", target=37).reward == pytest.approx(2 / (1 + math.exp(1)))


def test_arithmetic_bad_reference_marks_only_that_item_invalid():
    assert arith("1 + 2", previous=None).status is ItemStatus.INVALID  # strict needs previous
    assert arith("1 + 2", previous="1 + x").status is ItemStatus.INVALID
    assert arith("3", previous=None, target="nan", options=LENIENT).status is ItemStatus.INVALID
    assert arith("3", previous=None, target=3, options=LENIENT).reward == pytest.approx(1.0)


def test_parse_sum():
    assert parse_sum("1 + 22+3") == [1, 22, 3]
    assert parse_sum("7") == [7]
    assert parse_sum("1 ++ 2") is None


def test_vader_compound_through_nltk():
    spec = get_reward("sentiment_vader")
    options = spec.options({})
    good, bad = score_items(get_reward("sentiment_vader"), options, [
        RewardItem("g", "The film", " was wonderful and I loved it"), RewardItem("b", "The film", " was awful")])
    assert 0 < good.reward <= 1 and -1 <= bad.reward < 0
    assert set(good.components) == {"neg", "neu", "pos", "compound"}
    full = spec.options({"text": "full"})
    [scored] = score_items(get_reward("sentiment_vader"), full, [RewardItem("f", "great ", "")])
    assert scored.reward > 0


def test_sentiment_classifier_on_a_tiny_model(tmp_path):
    path = save_tiny_classifier(tmp_path / "clf")
    spec = get_reward("sentiment_classifier")
    logit = spec.options({"model": str(path)})
    prob = spec.options({"model": str(path), "output": "prob"})
    item = RewardItem("a", "i love", " this movie")
    [by_logit] = score_items(get_reward("sentiment_classifier"), logit, [item])
    [by_prob] = score_items(get_reward("sentiment_classifier"), prob, [item])
    assert by_logit.ok and by_prob.ok
    assert by_logit.reward == pytest.approx(by_logit.components["logit"])
    assert 0 < by_prob.reward < 1 and by_prob.reward == pytest.approx(by_logit.components["prob"])
    with pytest.raises(InvalidArgument, match="'model' is required"):
        spec.options({})


def test_unknown_reward_lists_valid_names():
    with pytest.raises(UnknownReward) as error:
        get_reward("sentiment")
    for name in ("arithmetic", "sentiment_vader", "sentiment_classifier", "ludii"):
        assert name in str(error.value)


def test_options_are_validated_with_helpful_messages():
    spec = get_reward("arithmetic")
    assert spec.options({"lenient": "true"}).lenient is True
    with pytest.raises(InvalidArgument, match="valid options: lenient, scale"):
        spec.options({"lenint": "true"})
    with pytest.raises(InvalidArgument, match="not a valid bool"):
        spec.options({"lenient": "maybe"})
    with pytest.raises(InvalidArgument, match="scale must be > 0"):
        spec.options({"scale": "0"})
    with pytest.raises(InvalidArgument, match="not a valid float"):
        spec.options({"scale": "nan"})


def test_a_raising_reward_fails_only_its_item():
    spec = REGISTRY["test_explosive"]
    results = score_items(get_reward("test_explosive"), spec.options({}), [
        RewardItem("1", "", "fine"), RewardItem("2", "", "boom"), RewardItem("3", "", "fine")])
    assert [r.status for r in results] == [ItemStatus.OK, ItemStatus.ERROR, ItemStatus.OK]
    assert "this item explodes" in results[1].error


def test_options_take_json_scalars_typed_by_the_options_dataclass():
    spec = get_reward("arithmetic")
    assert spec.options({"lenient": True, "scale": 5}).lenient is True  # JSON true, JSON int for a float
    assert spec.options({"lenient": "false", "scale": "2.5"}) == ArithmeticOptions(False, 2.5)  # gRPC strings
    for bad, fragment in [({"lenient": 1}, "not a valid bool"), ({"scale": True}, "not a valid float"),
                          ({"scale": float("inf")}, "must be finite"), ({"scale": [1]}, "not a valid float")]:
        with pytest.raises(InvalidArgument, match=fragment):
            spec.options(bad)
    ludii = get_reward("ludii")
    with pytest.raises(InvalidArgument, match="playouts must be in"):
        ludii.options({"playouts": 10**9})
    with pytest.raises(InvalidArgument, match="not a valid int"):
        ludii.options({"playouts": 2.5})


def test_reward_kinds_describe_options_and_the_label_field():
    kinds = {spec.kind().name: spec.kind() for spec in REGISTRY.values()}
    assert kinds["arithmetic"].label_field == "previous" and "lenient" in kinds["arithmetic"].options
    assert kinds["arithmetic"].options["scale"] == "float (default: 10.0)"
    assert kinds["ludii"].label_field == ""


def test_a_classifier_model_that_is_not_there_says_where_models_come_from(tmp_path):
    spec = get_reward("sentiment_classifier")
    [result] = score_items(spec, spec.options({"model": str(tmp_path / "no-such-model")}), [RewardItem("a", "", "x")])
    assert result.status is ItemStatus.ERROR
    assert "workers never download models" in result.error and "give a local model directory" in result.error
    assert "HF_HOME" not in result.error and "/root" not in result.error  # nothing of the worker's own set-up
