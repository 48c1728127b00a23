"""Store keys from vendor-supplied names: never escape, stable, no collisions, safe chars."""

from __future__ import annotations

import json
import os
import posixpath
import random
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.keys import MAX_SEGMENT, check_key, check_prefix, safe_key, safe_segment

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

# Plenty of separators, dots and look-alikes, so distinct names often clean up to the same text.
tricky_text = st.text(alphabet="aA0._-/\\:\x00\n é\u0301\u00e9\ufffd\U0001f600", max_size=12)
names = st.one_of(st.text(), tricky_text, st.text(min_size=90, max_size=300))


@given(st.lists(names, min_size=1, max_size=6))
def test_a_key_never_escapes_its_root(parts: list[str]) -> None:
    key = safe_key(*parts)
    check_key(key)
    assert posixpath.normpath(posixpath.join("/root", key)).startswith("/root/")
    assert len(key.split("/")) == len(parts)


@given(names, names)
def test_a_key_joins_the_segments_of_its_parts(first: str, second: str) -> None:
    assert safe_key(first, second) == f"{safe_segment(first)}/{safe_segment(second)}"


# Keys written to a store must come out the same in every later run and release, or the
# archiver would no longer find the evidence it stored under them (and archive it again).
@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("video-0.mp4", "video-0.mp4"),
        ("a:b", "a_b--6783a31eabf6"),
        ("user@example.com_device-logs.zip", "user_example.com_device-logs--7d420cc87b84.zip"),
        ("../etc/passwd", "_._etc_passwd--7fef78f53440"),
        ("", "_--e3b0c44298fc"),
        ("caf\u00e9", "caf_--850f7dc43910"),
        ("x" * 150 + ".mp4", "x" * 82 + "--caaf2ff649ca.mp4"),
        ("a_b--0123456789ab", "a_b--0123456789ab--cffbfa62c787"),
    ],
)
def test_segments_are_stable_across_releases(name: str, segment: str) -> None:
    assert safe_segment(name) == segment


def test_segments_do_not_depend_on_the_process() -> None:
    # Other interpreters, with other seeds for str hashes, give every segment again.
    rng = random.Random(17)
    alphabet = "aA0._-/\\:\x00\n \u00e9\u0301\ufffd\U0001f600"
    sample = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(300)]
    sample += ["x" * 150 + str(number) for number in range(3)]
    script = (
        "import json, sys\n"
        "from archiver.keys import safe_segment\n"
        "print(json.dumps([safe_segment(name) for name in json.load(sys.stdin)]))"
    )
    expected = [safe_segment(name) for name in sample]
    for seed in ("1", "2"):
        answer = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(sample),
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(answer.stdout) == expected


@given(st.lists(names, unique=True, max_size=30))
def test_distinct_names_never_collide(unique_names: list[str]) -> None:
    segments = [safe_segment(name) for name in unique_names]
    assert len(set(segments)) == len(segments)


@given(names)
def test_segments_only_use_safe_characters(name: str) -> None:
    segment = safe_segment(name)
    assert SAFE_SEGMENT.fullmatch(segment)
    assert len(segment) <= MAX_SEGMENT
    assert segment not in (".", "..")


@given(names)
def test_a_changed_segment_is_never_passed_through_again(name: str) -> None:
    # Re-sanitising a result is a no-op only when the name was kept verbatim.
    segment = safe_segment(name)
    assert (safe_segment(segment) == segment) == (segment == name)


@pytest.mark.parametrize(
    "name", ["video.mp4", "0-video.mp4", "Session_42", "a-b_c.d", "x" * MAX_SEGMENT]
)
def test_safe_names_are_kept_verbatim(name: str) -> None:
    assert safe_segment(name) == name


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("a:b", "a_b"),
        ("../etc/passwd", "_._etc_passwd"),
        ("/abs/path", "_abs_path"),
        ("C:\\Windows\\x", "C__Windows_x"),
        (".hidden", "_hidden"),
        (".", "_"),
        ("..", "_."),
        ("", "_"),
        ("nul\x00byte", "nul_byte"),
        ("tab\there", "tab_here"),
        ("café", "caf_"),
        ("cafe\u0301", "caf_"),  # NFC first: e + combining accent is one character
    ],
)
def test_unsafe_names_are_cleaned_and_tagged(name: str, readable: str) -> None:
    segment = safe_segment(name)
    prefix, _, tag = segment.rpartition("--")
    assert prefix == readable
    assert re.fullmatch(r"[0-9a-f]{12}", tag)


def test_look_alikes_do_not_collide() -> None:
    assert len({safe_segment(name) for name in ["a:b", "a_b", "a/b", "a\\b", "a b"]}) == 5
    assert safe_segment("café") != safe_segment("cafe\u0301")  # NFC and NFD spellings


def test_uuids_and_plain_file_names_are_kept_as_they_are() -> None:
    for name in ("9452bdfb-6481-45a9-ae15-a072bce3ef27", "video-0.mp4", "report.pdf"):
        assert safe_segment(name) == name


def test_a_file_extension_survives_the_hash() -> None:
    segment = safe_segment("user@example.com_device-logs.zip")
    assert segment.startswith("user_example.com_device-logs--") and segment.endswith(".zip")


def test_a_name_crafted_to_look_hashed_does_not_collide() -> None:
    hashed = safe_segment("a:b")
    assert safe_segment(hashed) != hashed


def test_long_names_are_capped_and_stay_distinct() -> None:
    first, second = "x" * 500 + "1", "x" * 500 + "2"
    assert len(safe_segment(first)) == MAX_SEGMENT
    assert safe_segment(first) != safe_segment(second)


def test_safe_key_treats_each_part_as_one_segment() -> None:
    assert safe_key("perfecto", "session-1") == "perfecto/session-1"
    key = safe_key("perfecto", "a/b")
    assert key.count("/") == 1
    assert key.startswith("perfecto/a_b-")
    with pytest.raises(ValueError):
        safe_key()


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/", "/", ".", "..", "a/./b", "a/../b", "a\\b", "a\x00b"]
)
def test_check_key_refuses_keys_that_could_escape(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


@pytest.mark.parametrize("key", ["a", "a/b/c.mp4", "a..b/c", "..a/b", "a/.b", "-x/_y"])
def test_check_key_accepts_relative_keys(key: str) -> None:
    check_key(key)


def test_check_prefix_allows_empty_and_trailing_slash() -> None:
    check_prefix("")
    check_prefix("a/")
    check_prefix("a/b")
    for prefix in ("/", "../", "a//", "a/../"):
        with pytest.raises(ValueError):
            check_prefix(prefix)
