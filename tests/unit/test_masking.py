"""Secret masking: forms of a secret, structural masking, and streams split anywhere."""

from __future__ import annotations

import itertools
import json
import random
import typing
from typing import Any

import msgspec
import pytest

from planrun.events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    LockAcquired,
    RetryScheduled,
    RunAborting,
    RunCrashed,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepInfo,
    StepsExpanded,
    decode_event,
    encode_event,
)
from planrun.masking import (
    EVENT_DATA_FIELDS,
    EVENT_KEPT_FIELDS,
    EVENT_STEP_LIST_FIELDS,
    EVENT_TEXT_FIELDS,
    EVENT_TEXT_MAP_FIELDS,
    IDENTIFIER_KEYS,
    MASK,
    MIN_LINE,
    MIN_SECRET,
    Masker,
    StreamMasker,
    mask_event,
    secret_problem,
)
from planrun.model import AttemptState, Plan, RunState, StepState

HOSTILE = 's3cr"et\\pa/ss-é'


def _stream(masker: Masker, chunks: list[bytes]) -> bytes:
    """Feed ``chunks`` to a fresh stream masker and return everything it wrote."""
    stream = masker.stream()
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def _split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the sorted offsets ``cuts`` (empty chunks included)."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- forms of a secret -------------------------------------------------------------


def test_mask_constant() -> None:
    """Secrets are replaced by three stars."""
    assert MASK == "***"


def test_raw_value_is_masked_everywhere() -> None:
    """Every occurrence of the raw value is replaced, and nothing else changes."""
    masker = Masker(["hunter22"])
    assert masker.text("pw=hunter22; again hunter22.") == "pw=***; again ***."


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param('quo"te', id="double-quote"),
        pytest.param("back\\slash", id="backslash"),
        pytest.param("sla/sh", id="slash"),
        pytest.param("caf\u00e9-latte", id="non-ascii"),
        pytest.param("tab\there", id="tab"),
        pytest.param("emoji-\U0001f511-key", id="astral"),
        pytest.param(HOSTILE, id="everything"),
    ],
)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_escaped_forms_are_masked(secret: str, *, ensure_ascii: bool) -> None:
    """A secret printed inside JSON (as json.dumps writes it) is masked, either way."""
    masker = Masker([secret])
    printed = json.dumps({"token": secret}, ensure_ascii=ensure_ascii)
    masked = masker.text(printed)
    assert masked == '{"token": "***"}'
    assert masker.text(secret) == MASK


def test_multi_line_secret_json_form_is_masked() -> None:
    """A multi-line secret printed as a JSON string (``\\n`` escaped) is masked whole."""
    value = "-----BEGIN KEY-----\nabcdef\n-----END KEY-----"
    masker = Masker([value])
    assert masker.text(json.dumps(value)) == f'"{MASK}"'
    assert masker.text(f"key: {value}!") == f"key: {MASK}!"


def test_multi_line_secret_lines_are_masked_alone() -> None:
    """Each line of four characters or more of a multi-line secret is masked on its own."""
    value = "first-line\n  second  \nab\nxyz1"
    masker = Masker([value])
    assert masker.text("the first-line leaked") == f"the {MASK} leaked"
    assert masker.text("-second-") == f"-{MASK}-"  # lines are stripped
    assert masker.text("xyz1") == MASK  # exactly MIN_LINE characters
    assert masker.text("ab and xyz") == "ab and xyz"  # shorter lines are not masked
    assert masker.text(value) == MASK


def test_min_line_boundary() -> None:
    """A line of MIN_LINE - 1 characters is not a form; one of MIN_LINE is."""
    short, exact = "q" * (MIN_LINE - 1), "r" * MIN_LINE
    masker = Masker([f"{short}\n{exact}"])
    assert short not in masker.forms
    assert exact in masker.forms


def test_crlf_multi_line_secret_lines_are_masked() -> None:
    """Lines of a secret with CRLF line ends are masked without their ``\\r``."""
    masker = Masker(["alpha-one\r\nbeta-two"])
    assert masker.text("alpha-one\nbeta-two") == f"{MASK}\n{MASK}"


def test_single_line_secret_has_no_line_forms() -> None:
    """A secret without a newline contributes only its raw and JSON forms."""
    masker = Masker(['a"bc'])
    assert set(masker.forms) == {'a"bc', 'a\\"bc'}


def test_overlapping_secrets_longest_wins() -> None:
    """When two secrets start at the same place, the longer is masked whole."""
    masker = Masker(["token", "token-extra-secret"])
    assert masker.text("x token-extra-secret y") == f"x {MASK} y"
    assert masker.text("x token y") == f"x {MASK} y"
    masker = Masker(["token-extra-secret", "token"])  # order of the secrets does not matter
    assert masker.text("token-extra-secret") == MASK


def test_forms_are_longest_first() -> None:
    """forms lists the longest form first, and longest is its length in bytes."""
    masker = Masker(["ab", "abcdé"])
    assert masker.forms[0] == "abcd\\u00e9"
    assert set(masker.forms) == {"ab", "abcdé", "abcd\\u00e9"}
    assert [len(f) for f in masker.forms] == sorted((len(f) for f in masker.forms), reverse=True)
    assert masker.longest == len(b"abcd\\u00e9")


def test_regex_metacharacters_are_literal() -> None:
    """A secret made of regex metacharacters matches only itself."""
    masker = Masker(["a.*b|(c)"])
    assert masker.text("a.*b|(c) axxb c") == f"{MASK} axxb c"


def test_masked_text_holds_no_secret() -> None:
    """Masking several secrets at once leaves none of them in the text."""
    secrets = ["alpha-secret", "beta\\secret", 'gamma"q']
    masker = Masker(secrets)
    text = " | ".join([*secrets, json.dumps(secrets), json.dumps(secrets, ensure_ascii=False)])
    masked = masker.text(text)
    for secret in secrets:
        assert secret not in masked
        assert json.dumps(secret)[1:-1] not in masked


# --- the empty masker ---------------------------------------------------------------


@pytest.mark.parametrize("secrets", [[], [""], ["", ""]], ids=["none", "empty", "empties"])
def test_empty_masker_is_falsy_and_a_no_op(secrets: list[str]) -> None:
    """Without a non-empty secret the masker is falsy and changes nothing."""
    masker = Masker(secrets)
    assert not masker
    assert masker.forms == ()
    assert masker.longest == 0
    assert masker.text("anything ***") == "anything ***"
    data = {"k": ["v", 1], "step_id": "s"}
    assert masker.data(data) is data
    stream = masker.stream()
    assert stream.feed(b"chunk") == b"chunk"
    assert stream.flush() == b""


def test_masker_with_a_secret_is_truthy() -> None:
    """A masker with one secret is truthy; empty secret values are ignored."""
    masker = Masker(["", "x1"])
    assert masker
    assert masker.forms == ("x1",)


# --- data() -------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(IDENTIFIER_KEYS))
def test_data_leaves_identifier_values_alone(key: str) -> None:
    """The value of an identifier field is never masked, even if it equals a secret."""
    masker = Masker(["deploy"])
    assert masker.data({key: "deploy", "reason": "deploy failed"}) == {
        key: "deploy",
        "reason": f"{MASK} failed",
    }


def test_identifier_keys_are_the_documented_ones() -> None:
    """The identifier keys are exactly the event/record identifier fields, and the
    fields that hold step ids (alone, in lists or as map keys)."""
    scalars = {"type", "run_id", "step_id", "ts", "seq", "state", "id", "plan_id"}
    step_id_sets = {"depends_on", "rerun", "kept", "failed_steps"}
    paths = {"plan_path", "log_path"}
    names = {"secrets"}  # the plan's secret names
    assert scalars | step_id_sets | paths | names == IDENTIFIER_KEYS


def test_data_masks_nested_string_values_never_keys() -> None:
    """String values in nested dicts and lists are masked; dict keys never are (they
    are structure: a masked key breaks the record's shape)."""
    masker = Masker(["pw123"])
    data: dict[str, Any] = {
        "type": "step_finished",
        "step_id": "pw123",
        "outputs": {"pw123": "x", "token": "is pw123"},
        "args": ["--password", "pw123", ["deep pw123"]],
        "nested": {"step_id": "pw123", "msg": "pw123"},
        "exit_code": 1,
        "ok": True,
        "none": None,
        "ratio": 1.5,
    }
    assert masker.data(data) == {
        "type": "step_finished",
        "step_id": "pw123",
        "outputs": {"pw123": "x", "token": f"is {MASK}"},
        "args": ["--password", MASK, [f"deep {MASK}"]],
        "nested": {"step_id": "pw123", "msg": MASK},
        "exit_code": 1,
        "ok": True,
        "none": None,
        "ratio": 1.5,
    }


def test_data_does_not_change_its_input() -> None:
    """data() returns new containers and leaves the input as it was."""
    masker = Masker(["pw123"])
    data = {"a": ["pw123"], "b": {"c": "pw123"}}
    masker.data(data)
    assert data == {"a": ["pw123"], "b": {"c": "pw123"}}


@pytest.mark.parametrize("key", ["depends_on", "rerun", "failed_steps"])
def test_data_lists_of_step_ids_are_identifiers(key: str) -> None:
    """A list of step ids is kept whole even when a secret equals one of the ids, so
    the graph and the failed/rerun sets a reader rebuilds stay right."""
    masker = Masker(["deploy"])
    assert masker.data({key: ["deploy", "build"], "msg": "deploy"}) == {
        key: ["deploy", "build"],
        "msg": MASK,
    }


def test_data_kept_map_of_step_ids_is_an_identifier() -> None:
    """run_resumed's ``kept`` maps step ids to states: neither is masked."""
    masker = Masker(["deploy"])
    assert masker.data({"kept": {"deploy": "succeeded"}}) == {"kept": {"deploy": "succeeded"}}


def test_data_lists_under_other_keys_are_masked() -> None:
    """A list under any other key is free text: its items are masked."""
    masker = Masker(["pw123"])
    assert masker.data({"args": ["pw123"]}) == {"args": [MASK]}


def test_data_plain_string_and_scalars() -> None:
    """data() on a bare string masks it; on other scalars returns them unchanged."""
    masker = Masker(["pw123"])
    assert masker.data("a pw123") == f"a {MASK}"
    assert masker.data("pw123", "step_id") == "pw123"
    assert masker.data(42) == 42


def test_data_leaves_non_string_keys_alone() -> None:
    """Builtins may hold int keys (YAML metadata); they are not text and stay as they are."""
    masker = Masker(["pw123"])
    assert masker.data({"metadata": {1: "pw123"}}) == {"metadata": {1: MASK}}


# --- StreamMasker --------------------------------------------------------------------


def _corpus(secret: str) -> str:
    """A text holding ``secret`` several times (raw, adjacent, JSON-escaped) plus near
    misses: prefixes of it that are not followed by the rest."""
    near = secret[: len(secret) // 2]
    return (
        f"{secret}start {near}... {secret}{secret} mid {near}{secret} "
        f"{json.dumps({'t': secret})} {json.dumps(secret, ensure_ascii=False)} "
        f"{secret[:-1]} end {secret}"
    )


STREAM_HOSTILES = [
    pytest.param("hunter22", id="ascii"),
    pytest.param("aab", id="self-overlapping-prefix"),
    pytest.param("abab", id="periodic"),
    pytest.param(HOSTILE, id="quotes-backslash-slash-non-ascii"),
]


@pytest.mark.parametrize("secret", STREAM_HOSTILES)
def test_stream_split_at_every_point_matches_text(secret: str) -> None:
    """Cut in two at every byte offset, the stream is masked exactly like the whole text."""
    masker = Masker([secret])
    text = _corpus(secret)
    data = text.encode()
    expected = masker.text(text).encode()
    assert secret.encode() not in expected
    for cut in range(len(data) + 1):
        out = _stream(masker, _split_at(data, [cut]))
        assert out == expected, f"split at {cut}"


@pytest.mark.parametrize("secret", STREAM_HOSTILES)
def test_stream_random_chunks_match_text(secret: str) -> None:
    """Fed in random chunk sizes (seeded, 200 times), the stream is masked like the text."""
    rng = random.Random(1234)
    masker = Masker([secret, "other-secret"])
    text = _corpus(secret) + " other-secret " + _corpus(secret)
    data = text.encode()
    expected = masker.text(text).encode()
    for _ in range(200):
        cuts = sorted(rng.choices(range(len(data) + 1), k=rng.randint(1, 40)))
        out = _stream(masker, _split_at(data, cuts))
        assert out == expected, f"cuts {cuts}"
        assert secret.encode() not in out


def test_stream_one_byte_at_a_time() -> None:
    """Feeding one byte at a time still masks every occurrence."""
    masker = Masker([HOSTILE])
    text = _corpus(HOSTILE)
    data = text.encode()
    out = _stream(masker, [data[i : i + 1] for i in range(len(data))])
    assert out == masker.text(text).encode()


def test_stream_does_not_hold_back_text_without_a_secret_prefix() -> None:
    """A chunk whose end cannot start a secret is returned whole, at once."""
    stream = Masker(["hunter22"]).stream()
    assert stream.feed(b"hello world\n") == b"hello world\n"
    assert stream.feed(b"pw hunter22 ok\n") == b"pw *** ok\n"
    assert stream.flush() == b""


def test_stream_holds_a_possible_secret_start_until_the_next_read() -> None:
    """The tail that may start a secret is held, then masked or released."""
    stream = Masker(["hunter22"]).stream()
    assert stream.feed(b"pw: hun") == b"pw: "
    assert stream.feed(b"ter2") == b""
    assert stream.feed(b"2 done") == b"*** done"
    assert stream.feed(b"... hunt") == b"... "
    assert stream.feed(b"ing") == b"hunting"


def test_stream_flush_releases_the_held_tail() -> None:
    """At the end of the stream the held bytes (not a whole secret) are written as is."""
    stream = Masker(["hunter22"]).stream()
    assert stream.feed(b"ends with hunter2") == b"ends with "
    assert stream.flush() == b"hunter2"
    assert stream.flush() == b""


def test_stream_holds_less_than_the_longest_form() -> None:
    """Never more than ``longest - 1`` bytes are held back."""
    masker = Masker(["abcdefgh"])
    stream = masker.stream()
    for _ in range(5):
        out = stream.feed(b"abcdefg")
        assert len(stream.flush()) <= masker.longest - 1
        assert b"abcdefgh" not in out


def test_stream_masker_is_a_stream_masker() -> None:
    """Masker.stream() returns a fresh StreamMasker each time."""
    masker = Masker(["x1"])
    first, second = masker.stream(), masker.stream()
    assert isinstance(first, StreamMasker)
    assert first is not second
    first.feed(b"x")
    assert second.feed(b"1") == b"1"


def test_stream_secret_split_inside_a_utf8_character() -> None:
    """A split in the middle of a multi-byte character of the secret is handled."""
    masker = Masker(["é-secret-é"])
    data = "a é-secret-é b".encode()
    for cut in range(len(data) + 1):
        assert _stream(masker, _split_at(data, [cut])) == b"a *** b"


def test_stream_overlapping_secrets_longest_wins_across_chunks() -> None:
    """Two secrets, one a prefix of the other, split right after the shorter one."""
    masker = Masker(["token", "token-extra-secret"])
    out = _stream(masker, [b"x token", b"-extra-secret y"])
    assert out == masker.text("x token-extra-secret y").encode() == b"x *** y"


def test_stream_multi_line_secret_split_after_a_line() -> None:
    """A multi-line secret split after a line is masked whole, as text() does."""
    value = "ab\ncdef\ngh"
    masker = Masker([value])
    out = _stream(masker, [b"ab\ncdef", b"\ngh"])
    assert out == masker.text(value).encode() == b"***"


def test_stream_multi_line_secret_split_inside_a_line() -> None:
    """Split where no line is complete, a multi-line secret is masked whole."""
    masker = Masker(["ab\ncdef\ngh"])
    assert _stream(masker, [b"<ab\ncd", b"ef\ngh>"]) == b"<***>"


def test_stream_overlapping_and_multi_line_secrets_random_chunks_match_text() -> None:
    """Secrets that are prefixes of each other, a multi-line one and one ending in a
    backslash, fed in random chunks (seeded, 300 times): always exactly like text()."""
    rng = random.Random(99)
    secrets = ["tok", "token", "token-extra", "ab\ncdef\ngh", "end\\"]
    masker = Masker(secrets)
    text = " ".join(
        [
            "x token-extra y tok tokenz token-ext",
            json.dumps({"v": "ab\ncdef\ngh", "w": "end\\"}),
            "ab\ncdef\ngh",
            "end\\ ab\ncd",
        ]
    )
    data = text.encode()
    expected = masker.text(text).encode()
    for _ in range(300):
        cuts = sorted(rng.choices(range(len(data) + 1), k=rng.randint(1, 30)))
        assert _stream(masker, _split_at(data, cuts)) == expected, f"cuts {cuts}"


# --- events: masked in free-text fields only -----------------------------------------


def _event_types() -> list[type[Any]]:
    return list(typing.get_args(Event))


def test_every_event_field_is_classified_once() -> None:
    """Each field of each event type is either masked (text, text map, step list) or
    kept (ids, paths, numbers, enums): a new field needs a deliberate choice."""
    sets = [
        EVENT_TEXT_FIELDS,
        EVENT_TEXT_MAP_FIELDS,
        EVENT_STEP_LIST_FIELDS,
        EVENT_DATA_FIELDS,
        EVENT_KEPT_FIELDS,
    ]
    for kind in _event_types():
        for name in (*kind.__struct_fields__, "type"):
            assert sum(name in s for s in sets) == 1, (kind.__name__, name)


def _all_events(secret: str, root: str) -> list[Event]:
    """One event of each type, with ``secret`` in every string and map key."""
    log = f"{root}/runs/r-{secret}/logs/{secret}.1.log"
    base: dict[str, Any] = {"run_id": f"r-{secret}", "seq": 1, "ts": "2026-01-01T00:00:00.000000Z"}
    info = StepInfo(secret, f"name {secret}", [secret], 1, True)
    return [
        RunStarted(
            **base,
            plan_id=secret,
            plan_path=f"{root}/p.json",
            variables={secret: secret, "PLAN_DIR": root},
            max_concurrency=2,
            steps=[info],
            pid=1,
        ),
        RunResumed(
            **base,
            plan_id=secret,
            plan_path=None,
            variables={},
            max_concurrency=1,
            steps=[info],
            pid=1,
            rerun=[secret],
            kept={secret: StepState.SUCCEEDED},
        ),
        AttemptStarted(**base, step_id=secret, attempt=1, pid=2, log_path=log),
        AttemptFinished(
            **base,
            step_id=secret,
            attempt=1,
            state=AttemptState.FAILED,
            exit_code=1,
            duration_sec=0.5,
            error=f"error {secret}",
        ),
        RetryScheduled(**base, step_id=secret, attempt=2, delay_sec=1.0),
        StepFinished(
            **base,
            step_id=secret,
            state=StepState.SUCCEEDED,
            attempts=1,
            exit_code=0,
            reason=f"why {secret}",
            outputs={"k": f"v {secret}", "plain": "x"},
        ),
        RunCrashed(**base, reason=f"gone {secret}", owner_pid=3),
        StepsExpanded(
            **base,
            step_id=secret,
            items=[f"item {secret}", {"k": secret}, 3],
            steps=[info],
            kept={secret: StepState.SUCCEEDED},
        ),
        LockAcquired(**base, name="lock", waited_sec=0.0, reclaimed_from_run=f"r-{secret}"),
        RunAborting(**base, reason=f"abort {secret}", step_id=secret),
        RunFinished(
            **base,
            state=RunState.FAILED,
            exit_code=1,
            reason=f"fail {secret}",
            failed_steps=[secret],
        ),
    ]


@pytest.mark.parametrize("secret", ["1234", "tmp/", 's3"c', "runs", "\u00e9t\u00e9\U0001f511"])
def test_mask_event_masks_text_and_keeps_structure(secret: str) -> None:
    """Only free text is masked: ids, paths, numbers, enums and keys are as they were,
    and the masked event encodes and decodes to itself."""
    root = f"/tmp/{secret}/state"
    masker = Masker([secret])
    for event in _all_events(secret, root):
        masked = mask_event(event, masker)
        assert decode_event(encode_event(masked)) == masked
        for name in event.__struct_fields__:
            before, after = getattr(event, name), getattr(masked, name)
            if name == "masked_outputs":  # derived from outputs (checked below)
                continue
            if name in EVENT_KEPT_FIELDS or before is None:
                assert after == before, (type(event).__name__, name)
        for name in EVENT_TEXT_FIELDS & set(event.__struct_fields__):
            value = getattr(masked, name)
            assert value is None or (secret not in value and MASK in value)
    started = mask_event(_all_events(secret, root)[0], masker)
    assert isinstance(started, RunStarted)
    assert started.variables == {secret: MASK, "PLAN_DIR": root}
    assert [(s.id, s.name, s.depends_on) for s in started.steps] == [
        (secret, f"name {MASK}", [secret])
    ]
    expanded = next(
        mask_event(e, masker) for e in _all_events(secret, root) if isinstance(e, StepsExpanded)
    )
    assert isinstance(expanded, StepsExpanded)
    assert expanded.items == [f"item {MASK}", {"k": MASK}, 3]
    finished = mask_event(_all_events(secret, root)[5], masker)
    assert isinstance(finished, StepFinished)
    assert finished.outputs == {"k": f"v {MASK}", "plain": "x"}
    assert finished.masked_outputs == ["k"]


def test_mask_event_without_a_secret_is_the_same_object() -> None:
    """Nothing to mask: the event itself comes back."""
    event = _all_events("abcd", "/x")[3]
    assert mask_event(event, Masker(["zzzz"])) is event
    assert mask_event(event, Masker([])) is event


def test_kept_words_protect_only_occurrences_inside_them() -> None:
    """A secret inside a kept word (a step id, the state dir) stays in free text; the
    same secret elsewhere, or one that runs past the kept word's end, is masked."""
    masker = Masker(["tmpx", "mpx-secret"]).keeping(["tmpx", "/tmp/tmpx/st", "unrelated"])
    assert masker.text("step 'tmpx' failed") == "step 'tmpx' failed"
    assert masker.text("log /tmp/tmpx/st/runs") == "log /tmp/tmpx/st/runs"
    assert masker.text("token tmpx.") == "token tmpx."  # equal to the id: nothing to hide
    assert masker.text("tmpx-secret") == f"t{MASK}"  # starts inside 'tmpx', runs past it
    assert masker.text("a tmpxtmpx b") == "a tmpxtmpx b"
    assert Masker(["tmpx"]).text("step 'tmpx' failed") == f"step '{MASK}' failed"


@pytest.mark.parametrize(("value", "why"), [("", "empty"), ("a", "shorter"), ("abc", "shorter")])
def test_short_secrets_are_refused(value: str, why: str) -> None:
    """Secrets of 0-3 characters are refused; the reason never holds the value."""
    problem = secret_problem(value)
    assert problem is not None
    assert why in problem
    assert secret_problem("abcd") is None
    assert MIN_SECRET == 4


def test_kept_words_never_protect_data_values() -> None:
    """An output or variable value equal to a kept word is the secret itself: masked
    (and listed in masked_outputs); only planrun's own messages keep the words."""
    masker = Masker(["sekr"]).keeping(["sekr", "r-sekr"])
    assert masker.text("sekr", keep=False) == MASK
    assert masker.variables({"V": "sekr"}) == {"V": MASK}
    event = StepFinished(
        run_id="r-sekr",
        seq=4,
        ts="2026-01-01T00:00:00.000000Z",
        step_id="sekr",
        state=StepState.SUCCEEDED,
        attempts=1,
        reason="step 'sekr' done",
        outputs={"k": "sekr", "other": "x"},
    )
    masked = mask_event(event, masker)
    assert isinstance(masked, StepFinished)
    assert (masked.step_id, masked.reason) == ("sekr", "step 'sekr' done")
    assert masked.outputs == {"k": MASK, "other": "x"}
    assert masked.masked_outputs == ["k"]


def test_struct_masks_a_plan_and_it_still_validates() -> None:
    """A plan is masked in its free text (args, env values, cwd) but not in enum values,
    ids, dependency lists, secret names or keys: it converts back to a Plan even when
    a secret equals an enum value or a secret's own name."""
    plan = msgspec.convert(
        {
            "plan_id": "continue",
            "secrets": ["TOKEN"],
            "variables": {"continue": "continue-x"},
            "steps": [
                {"id": "continue", "command": "sh", "args": ["-c", "echo continue TOKEN"],
                 "on_failure": "continue", "when": "all_done", "env": {"continue": "continue"}},
                {"id": "b", "command": "true", "depends_on": ["continue"]},
            ],
        },
        Plan,
    )  # fmt: skip
    for secret in ("continue", "TOKEN", "all_done"):
        masked = Masker([secret]).struct(plan)
        back = msgspec.convert(msgspec.to_builtins(masked), Plan)
        assert back == masked
        assert [s.id for s in back.steps] == ["continue", "b"]
        assert back.steps[0].on_failure.value == "continue"
        assert back.steps[0].when.value == "all_done"
        assert back.steps[1].depends_on == ["continue"]
        assert back.secrets == ["TOKEN"]
        assert back.plan_id == "continue"
        assert list(back.steps[0].env) == ["continue"]
    masked = Masker(["continue"]).struct(plan)
    assert masked.steps[0].args == ["-c", f"echo {MASK} TOKEN"]
    assert masked.steps[0].env == {"continue": MASK}
    assert masked.variables == {"continue": f"{MASK}-x"}
    assert Masker(["zzzz"]).struct(plan) == plan
