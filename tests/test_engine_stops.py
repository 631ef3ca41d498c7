"""Stop strings in streamed text: cut at the first, hold back possible beginnings."""

from __future__ import annotations

from gemma_code.engine.stops import StopScanner


def feed_all(scanner: StopScanner, pieces: list[str]) -> tuple[str, bool]:
    out = ""
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out += text
        if stopped:
            return out, True
    return out + scanner.flush(), False


def test_stop_string_split_across_pieces_is_cut() -> None:
    assert feed_all(StopScanner(["<end_of_turn>"]), ["Hi <end", "_of", "_turn> tail"]) == ("Hi ", True)


def test_possible_beginning_is_held_back_then_released() -> None:
    scanner = StopScanner(["\nUser:"])
    assert scanner.feed("line\nUs") == ("line", False)
    assert scanner.feed("ually fine") == ("\nUsually fine", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopScanner(["BBB", "A"]), ["xxBBB then A"]) == ("xx", True)


def test_held_text_is_flushed_at_the_end() -> None:
    assert feed_all(StopScanner(["<eos>"]), ["done <e"]) == ("done <e", False)


def test_no_stops_passes_text_through() -> None:
    assert StopScanner(["", ""]).feed("anything <eos>") == ("anything <eos>", False)
