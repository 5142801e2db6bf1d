"""Property-based tests of the gRPC servicer over a real socket: no input yields INTERNAL or UNKNOWN."""
import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import inprocess_service
from reward_contract.wire.v1 import reward_pb2 as pb
from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

SEED = 20261125
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
# Options travel as strings on gRPC: numbers at every limit, written every way.
number_text = st.one_of(st.integers().map(str), st.floats().map(repr), st.sampled_from(
    ["1e309", "-1e309", "inf", "nan", "-0", "1e-400", "9" * 5000, "0x10", "1_000", " 5 ", "true", ""]))
items = st.lists(st.builds(pb.Item, id=text, prompt=text, completion=text,
                           reference=st.dictionaries(st.sampled_from(["previous", "target", "prefix", "x"]),
                                                     text | number_text, max_size=3)),
                 max_size=5)
requests = st.builds(pb.ScoreRequest, reward=st.sampled_from(["arithmetic", "sentiment_vader", "ludii", "nope", ""]),
                     items=items, options=st.dictionaries(st.sampled_from(
                         ["lenient", "scale", "text", "playouts", "max_turns", "time_limit_s", "seed", "q"]),
                         text | number_text, max_size=3),
                     deadline_ms=st.integers(0, 2**32 - 1), no_cache=st.booleans())


@pytest.fixture(scope="module")
def channel():
    from tests.conftest import RunningServer

    server = RunningServer(inprocess_service())
    chan = grpc.insecure_channel(server.grpc_target)
    yield chan
    chan.close()
    server.close()


@seed(SEED)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests)
def test_structured_requests_never_fault(channel, request):
    try:
        response = pb_grpc.RewardServiceStub(channel).Score(request, timeout=30)
        assert [r.id for r in response.results] == [i.id for i in request.items]
    except grpc.RpcError as error:
        assert error.code() not in SERVER_FAULTS, error.details()


@seed(SEED)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300), method=st.sampled_from(["Score", "ListRewards"]))
def test_random_bytes_never_fault(channel, raw, method):
    call = channel.unary_unary(f"/rlpr.reward.v1.RewardService/{method}")
    try:
        call(raw, timeout=30)
    except grpc.RpcError as error:
        assert error.code() not in SERVER_FAULTS, error.details()


@seed(SEED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(requests, min_size=1, max_size=3))
def test_streams_never_fault(channel, batch):
    try:
        answers = list(pb_grpc.RewardServiceStub(channel).ScoreStream(iter(batch), timeout=30))
        assert len(answers) == len(batch)
    except grpc.RpcError as error:
        assert error.code() not in SERVER_FAULTS, error.details()


def test_stream_and_reflection_also_need_the_token(make_server):
    server = make_server(inprocess_service(), token="t0k")
    channel = grpc.insecure_channel(server.grpc_target)
    stub = pb_grpc.RewardServiceStub(channel)
    request = pb.ScoreRequest(reward="sentiment_vader", items=[pb.Item(id="1", completion="nice")])
    with pytest.raises(grpc.RpcError) as error:
        list(stub.ScoreStream(iter([request]), timeout=10))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as error:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        next(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answers = list(stub.ScoreStream(iter([request]), timeout=10, metadata=(("authorization", "Bearer t0k"),)))
    assert answers[0].results[0].status == pb.OK
    channel.close()
