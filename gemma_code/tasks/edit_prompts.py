"""What the model is told for edits: one instruction per edit format, and the retry message."""

from __future__ import annotations

from collections.abc import Sequence

from gemma_code.edits.model import Failure
from gemma_code.edits.parse import ParseProblem

SEARCH_REPLACE = """\
To change files, reply with SEARCH/REPLACE blocks, one per change:

path/to/file.py
<<<<<<< SEARCH
    lines copied exactly from the current file
=======
    the lines that replace them
>>>>>>> REPLACE

Rules:
- Put the file path, relative to the repository root, alone on the line before each block.
- SEARCH copies the current lines exactly, with their indentation; include just enough
  lines to be unique in the file. Several small blocks beat one big one.
- To create a file, leave the SEARCH section empty and put the whole file in REPLACE.
- Say in one or two sentences what you changed before the blocks. No other code blocks."""

UNIFIED_DIFF = """\
To change files, reply with a unified diff in a ```diff block:

```diff
--- a/path/to/file.py
+++ b/path/to/file.py
@@ -12,3 +12,3 @@
 context line
-old line
+new line
 context line
```

Rules: paths are relative to the repository root; copy context and removed lines exactly,
with their indentation; use --- /dev/null to create a file. Say in one or two sentences
what you changed before the diff."""

WHOLE_FILE = """\
To change files, reply with each changed file in full:

path/to/file.py
```
the complete new content of the file
```

Rules: put the path alone on the line before the fence; write the whole file, never
"... unchanged ..." placeholders. Say in one or two sentences what you changed first."""

FORMATS = {"search-replace": SEARCH_REPLACE, "diff": UNIFIED_DIFF, "whole-file": WHOLE_FILE}
DEFAULT_FORMAT = "search-replace"  # measured best: BENCHMARKS.md


def retry_message(failures: Sequence[Failure], problems: Sequence[ParseProblem],
                  no_edits: bool = False, fmt: str = DEFAULT_FORMAT) -> str:
    """Tell the model what did not apply and why, with the closest actual lines."""
    parts = []
    if no_edits:
        parts.append("Your reply contained no edit blocks, so nothing was changed.")
    if problems:
        parts.append("These blocks could not be read:\n" + "\n".join(p.explain() for p in problems))
    if failures:
        parts.append("These edits did not apply (nothing from them was written):\n\n"
                     + "\n\n".join(f.explain() for f in failures))
    what = "SEARCH/REPLACE blocks" if fmt == "search-replace" else "edits"
    parts.append(f"Reply with corrected {what} for these changes only; edits that applied are "
                 "already in place. Copy SEARCH lines exactly from the file (the closest actual "
                 "lines above show what is really there).")
    return "\n\n".join(parts)
