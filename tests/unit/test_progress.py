"""The terminal progress bar and byte counts as people read them."""

from __future__ import annotations

import io

from archiver.progress import TerminalProgress, human_bytes


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"


def test_bar_redraws_in_place_and_ends_with_a_newline() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress(0, 0, 4, 4096)
    progress(4, 4096, 4, 4096)  # the last update is always drawn
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rverify [")
    assert "100%  4/4 objects  4.0 KiB/4.0 KiB" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_nothing_drawn_means_nothing_printed() -> None:
    stream = io.StringIO()
    TerminalProgress(stream).close()
    assert stream.getvalue() == ""
