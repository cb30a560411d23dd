"""Text from users and files, shown on a page as the text it is.

Streamlit renders most strings it draws (captions, messages, buttons' and expanders' labels, st.write) as Markdown,
with its own additions: `:red[...]` colours, `:material/...:` icons and `:shortcode:` emoji, `$...$` maths. A run's
folder name, its name, note and tags, a sweep's name and any message that quotes them or a file's content come from
people or files, so every page passes them through `plain` before they are drawn: they never render as Markdown.
"""
from __future__ import annotations

import re

_INLINE = re.compile(r"([\\`*~\[\]<>$:|&{}])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|(?<=www)\.", re.IGNORECASE)
_BLOCK = re.compile(r"^(\s*)([-+#=>]|\d+[.)])")


def plain(text) -> str:
    """`text` as Markdown that shows exactly `text`, on one line: every character Markdown or Streamlit reads
    inline is escaped with a backslash (an underscore inside a word, which is never emphasis, is left as it is), a
    leading list, heading or quote marker too, and line breaks become spaces."""
    line = " ".join(str(text).split())
    line = _INLINE.sub(lambda m: "\\" + m.group(0), line)
    return _BLOCK.sub(lambda m: m.group(1) + "\\" + m.group(2) if len(m.group(2)) == 1
                      else m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], line)


def unescaped(markdown: str) -> str:
    """What `plain`'s output reads as once rendered: the text it was given (line breaks aside)."""
    return re.sub(r"\\([\\`*~\[\]<>$:|&{}_.#=+\-)])", r"\1", markdown)
