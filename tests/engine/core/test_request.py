from inferplane.engine.core.request import Request, RequestStatus
from inferplane.engine.core.sampling_params import SamplingParams


def test_new_request_tracks_prompt_and_outputs() -> None:
    request = Request("r1", [1, 2, 3], SamplingParams(), arrival_time=5.0, priority=2)
    assert request.num_tokens == 3
    assert request.num_prompt_tokens == 3
    assert request.status is RequestStatus.WAITING
    request.append_output(7)
    assert request.all_token_ids == [1, 2, 3, 7]
    assert request.output_token_ids == [7]
    assert request.prompt_token_ids == [1, 2, 3]
    assert request.num_output_tokens == 1
    assert "r1" in repr(request)


def test_stop_ids_merge_eos_unless_ignored() -> None:
    params = SamplingParams(stop_token_ids=(9,))
    assert Request("a", [1], params, eos_token_ids=[2]).stop_ids == {2, 9}
    ignoring = SamplingParams(stop_token_ids=(9,), ignore_eos=True)
    assert Request("b", [1], ignoring, eos_token_ids=[2]).stop_ids == {9}


def test_prompt_is_copied() -> None:
    prompt = [1, 2]
    request = Request("r", prompt, SamplingParams())
    request.append_output(3)
    assert prompt == [1, 2]


def test_finish_reasons() -> None:
    assert RequestStatus.FINISHED_STOPPED.finish_reason == "stop"
    assert RequestStatus.FINISHED_LENGTH.finish_reason == "length"
    assert RequestStatus.FINISHED_ABORTED.finish_reason == "abort"
    assert RequestStatus.RUNNING.finish_reason is None
    assert RequestStatus.FINISHED_ABORTED.finished
    assert not RequestStatus.PREEMPTED.finished
