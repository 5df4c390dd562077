"""Shell completion scripts that, like git's, put no space after a folder name (`demo/train/`):
click's own scripts add one after every plain value. A completer marks such a value with
type FOLDER; each script here is click's, with that one case added."""

from __future__ import annotations

from click.shell_completion import (
    _SOURCE_BASH,
    _SOURCE_ZSH,
    BashComplete,
    CompletionItem,
    FishComplete,
    ZshComplete,
    add_completion_class,
)

FOLDER = "nospace"  # a CompletionItem type: the word goes on after it (a project or dataset name ending in /)

_BASH_PLAIN = """        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
"""
_ZSH_PLAIN = """        if [[ "$type" == "plain" ]]; then
"""


def _patched(source: str, anchor: str, added: str) -> str:
    if anchor not in source:  # a click whose script changed: fail loudly, not complete oddly
        raise RuntimeError("click's completion script changed; update cas/cli/completion.py")
    return source.replace(anchor, added)


class CasBashComplete(BashComplete):
    source_template = _patched(_SOURCE_BASH, _BASH_PLAIN, _BASH_PLAIN + f"""        elif [[ $type == '{FOLDER}' ]]; then
            COMPREPLY+=($value)
            compopt -o nospace
""")


class CasZshComplete(ZshComplete):
    source_template = _patched(_SOURCE_ZSH, _ZSH_PLAIN, f"""        if [[ "$type" == "{FOLDER}" ]]; then
            compadd -S '' -U -V unsorted -- "$key"
        elif [[ "$type" == "plain" ]]; then
""")


class CasFishComplete(FishComplete):
    """fish puts no space after a word ending in / by itself: a folder is a plain value."""

    def format_completion(self, item: CompletionItem) -> str:
        if item.type == FOLDER:
            item.type = "plain"
        return super().format_completion(item)


for _shell in (CasBashComplete, CasZshComplete, CasFishComplete):
    add_completion_class(_shell)
