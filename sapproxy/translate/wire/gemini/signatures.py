"""
A Gemini C{thoughtSignature} carried in the id of the tool call it came with.

Gemini 3 refuses a replayed function call without the signature it was given, and OpenAI clients keep
only what OpenAI defines: most drop the non-standard C{thinking_blocks}, and the ones that keep them send
them back apart from the calls, so the signature cannot be put back on its own call.  Every client keeps a
tool call's id (it must send it back with the result), so the signature rides in it:
C{<id>__ts_<the signature's bytes in unpadded base64url>}.  Base64url keeps the id within
C{[A-Za-z0-9_-]}, the characters every upstream accepts in ids (Claude's pattern), should the
conversation move to another model.  L{ir_request_to_gemini} puts the signature back on its function call.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["GEMINI_MARK", "mark", "own", "signed_tool_use_id", "tool_use_id_signature"]

#: What a Gemini signature in a thinking block starts with (a character base64 never holds): a thinking
#: block's signature in a client's history may be Claude's (the conversation moved between models), which
#: Gemini must not be sent, and Gemini's, which Claude must not be sent.  Only marked ones go back to Gemini;
#: marked ones never go to Claude (L{sapproxy.translate.fit}).
GEMINI_MARK = "gemini:"


def mark(signature: str) -> str:
    """A Gemini signature as a thinking block carries it."""
    return GEMINI_MARK + signature if signature else signature


def own(signature: object) -> str | None:
    """The Gemini signature a thinking block's signature is, or None when it is not Gemini's (foreign)."""
    if isinstance(signature, str) and signature.startswith(GEMINI_MARK) and len(signature) > len(GEMINI_MARK):
        return signature[len(GEMINI_MARK):]
    return None

_SEPARATOR = "__ts_"


def signed_tool_use_id(base: str, signature: str | None) -> str:
    """C{base} with C{signature} in it, or C{base} alone when there is none or it is not canonical base64."""
    if not signature:
        return base
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return base
    if base64.b64encode(raw).decode("ascii") != signature:
        return base  # could not be given back byte for byte
    return base + _SEPARATOR + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def tool_use_id_signature(tool_id: object) -> str | None:
    """The signature a tool call id carries (L{signed_tool_use_id}), or None."""
    if not isinstance(tool_id, str):
        return None
    _, separator, tail = tool_id.partition(_SEPARATOR)
    if not separator or not tail:
        return None
    try:
        raw = base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii")
