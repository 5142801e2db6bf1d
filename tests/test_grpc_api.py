"""The gRPC front over a real socket: scoring, streaming, listing, health, reflection, errors, auth."""
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from reward_contract.client import GrpcRewardClient
from reward_contract.errors import InvalidArgument, Unauthenticated
from tests.conftest import inprocess_service
from reward_contract.types import ItemStatus, RewardItem
from reward_contract.wire.v1 import reward_pb2 as pb
from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

STEP = {"previous": "23 + 1 + 3"}


def stub_for(server):
    channel = grpc.insecure_channel(server.grpc_target)
    return channel, pb_grpc.RewardServiceStub(channel)


def test_score_batch_with_one_bad_item(embedded_server):
    client = GrpcRewardClient(embedded_server.grpc_target)
    results = client.score("arithmetic", [
        RewardItem("good", "", "23 + 4", {"previous": "23 + 1 + 3"}),
        RewardItem("bad", "", "23 + 4", {"previous": "23 + oops"}),
        RewardItem("zero", "", "no sum", STEP),
    ])
    assert [r.id for r in results] == ["good", "bad", "zero"]
    assert results[0].status is ItemStatus.OK and results[0].reward == pytest.approx(1.0)
    assert results[1].status is ItemStatus.INVALID and "previous" in results[1].error
    assert results[2].status is ItemStatus.OK and results[2].reward == 0.0
    client.close()


def test_stream_answers_each_batch_in_order(embedded_server):
    channel, stub = stub_for(embedded_server)
    requests = [pb.ScoreRequest(reward="sentiment_vader", items=[pb.Item(id=str(i), completion=text)])
                for i, text in enumerate(["I love it", "I hate it", "great"])]
    responses = list(stub.ScoreStream(iter(requests), timeout=30))
    assert [r.results[0].id for r in responses] == ["0", "1", "2"]
    assert responses[0].results[0].reward > 0 > responses[1].results[0].reward
    channel.close()


def test_list_rewards_health_and_reflection(embedded_server):
    channel, stub = stub_for(embedded_server)
    kinds = {k.name: k for k in stub.ListRewards(pb.ListRewardsRequest(), timeout=10).rewards}
    assert {"arithmetic", "sentiment_vader", "sentiment_classifier", "ludii"} <= set(kinds)
    assert "lenient" in kinds["arithmetic"].options
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="rlpr.reward.v1.RewardService"), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answer.list_services_response.service}
    assert "rlpr.reward.v1.RewardService" in names
    channel.close()


@pytest.mark.parametrize("request_, fragment", [
    (pb.ScoreRequest(reward="nope", items=[pb.Item(id="1", completion="x")]), "valid rewards"),
    (pb.ScoreRequest(reward="arithmetic"), "batch is empty"),
    (pb.ScoreRequest(reward="arithmetic", items=[pb.Item(completion="1")]), "empty id"),
    (pb.ScoreRequest(reward="arithmetic", items=[pb.Item(id="1", completion="1" * (1 << 20))]), "over the limit"),
    (pb.ScoreRequest(reward="arithmetic", items=[pb.Item(id="1")], options={"lenient": "perhaps"}), "valid bool"),
    (pb.ScoreRequest(reward="arithmetic", items=[pb.Item(id="1"), pb.Item(id="1")]), "appears twice"),
])
def test_bad_requests_are_invalid_argument_and_server_keeps_serving(embedded_server, request_, fragment):
    channel, stub = stub_for(embedded_server)
    with pytest.raises(grpc.RpcError) as error:
        stub.Score(request_, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in error.value.details()
    ok = stub.Score(pb.ScoreRequest(reward="sentiment_vader", items=[pb.Item(id="1", completion="ok")]), timeout=10)
    assert ok.results[0].status == pb.OK
    channel.close()


def test_invalid_utf8_bytes_are_invalid_argument_not_internal(embedded_server):
    channel = grpc.insecure_channel(embedded_server.grpc_target)
    raw_call = channel.unary_unary("/rlpr.reward.v1.RewardService/Score")  # bytes in, bytes out
    good = pb.ScoreRequest(reward="sentiment_vader", items=[pb.Item(id="1", completion="AB")]).SerializeToString()
    broken = good.replace(b"AB", b"\xff\xfe")
    with pytest.raises(grpc.RpcError) as error:
        raw_call(broken, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert pb.ScoreResponse.FromString(raw_call(good, timeout=10)).results[0].status == pb.OK
    channel.close()


def test_message_size_limit(make_server):
    server = make_server(inprocess_service(), max_request_bytes=4096)
    channel, stub = stub_for(server)
    with pytest.raises(grpc.RpcError) as error:
        stub.Score(pb.ScoreRequest(reward="arithmetic", items=[pb.Item(id="1", completion="1" * 10000)]), timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()


def test_token_auth(make_server):
    server = make_server(inprocess_service(), token="s3cret")
    item = [RewardItem("1", "", "great")]
    for token in ("", "wrong"):
        with pytest.raises(Unauthenticated):
            GrpcRewardClient(server.grpc_target, token=token).score("sentiment_vader", item)
        with pytest.raises(Unauthenticated):
            GrpcRewardClient(server.grpc_target, token=token).kinds()
    assert GrpcRewardClient(server.grpc_target, token="s3cret").score("sentiment_vader", item)[0].ok
    channel = grpc.insecure_channel(server.grpc_target)  # health stays open for probes
    assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
    channel.close()


def test_client_maps_invalid_argument(embedded_server):
    with pytest.raises(InvalidArgument, match="valid rewards"):
        GrpcRewardClient(embedded_server.grpc_target).score("nope", [RewardItem("1", "", "x")])
