"""
An IR request fitted to the upstream that will run it, before that upstream's converter sees it: the
tools it can run (L{sapproxy.translate.tool_support}), tool names it accepts
(L{sapproxy.translate.tool_names}) and, for Claude, the sampling parameters the model generation accepts
(L{sapproxy.translate.model_limits}).  Pure; the dispatcher logs and reports what was dropped.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from sapproxy.translate import ir as irtypes
from sapproxy.translate.errors import InvalidRequest
from sapproxy.translate.model_limits import fit_claude_sampling
from sapproxy.translate.tool_names import ToolNames, encode_tool_names
from sapproxy.translate.tool_support import fit_tools, search_results_as_text
from sapproxy.translate.wire.gemini.signatures import GEMINI_MARK

__all__ = ["FittedRequest", "fit_request", "upstream_kind"]


@frozen
class FittedRequest:
    """
    @ivar ir: the IR request to convert.
    @ivar names: the tool names as sent, to give the client back its own.
    @ivar dropped_tools: labels of the client's tools the upstream cannot run.
    """

    ir: irtypes.Request
    names: ToolNames
    dropped_tools: tuple[str, ...]


def upstream_kind(family: str, converse: bool) -> str:
    """C{openai}, C{gemini}, C{converse} or C{invoke}: the API an IR request goes to."""
    if family in ("openai", "gemini"):
        return family
    return "converse" if converse else "invoke"


def fit_request(request: irtypes.Request, upstream: str, model: str, *,
                max_output_tokens: int | None = None) -> FittedRequest:
    """
    C{ir} (not mutated) fitted to C{upstream} (see L{upstream_kind}) serving C{model}.

    @param max_output_tokens: the model's own output ceiling, which replaces a default C{max_tokens} (one
        the client did not set: the IR says so with C{_max_tokens_default}).
    """
    ir = _fit_max_tokens(irtypes.as_json(request), max_output_tokens)
    _refuse_what_cannot_come_back(ir, upstream)
    ir, dropped = fit_tools(ir, upstream)
    if upstream not in ("invoke", "anthropic"):
        ir = search_results_as_text(ir)
    ir, names = encode_tool_names(ir, upstream)
    if upstream in ("invoke", "converse", "anthropic"):
        ir = _without_gemini_thinking(ir)
        ir = fit_claude_sampling(ir, model)
        _refuse_unknown_sampling(ir)
    return FittedRequest(irtypes.as_request(ir), names, tuple(dropped))


def _refuse_what_cannot_come_back(ir: dict[str, Any], upstream: str) -> None:
    """
    C{logprobs} and C{n > 1} come back only from Gemini (whole answers: its log probabilities and
    candidates are read back into the OpenAI choices); its streams interleave candidates and would need a
    choice index per chunk the IR stream has no room for, and no other upstream here gives them through
    the IR: refused, never dropped.
    """
    sampling = ir.get("_sampling")
    if not isinstance(sampling, dict):
        return
    asked = [key for key in ("logprobs", "n") if sampling.get(key) is not None]
    if not asked:
        return
    param = asked[0]
    what = "logprobs" if param == "logprobs" else "n greater than 1"
    if upstream != "gemini":
        raise InvalidRequest(f"{what} is not supported for this model (only for Gemini models)", param)
    if ir.get("stream"):
        raise InvalidRequest(f"{what} is not supported in streams for Gemini models; send stream: false", param)


def _refuse_unknown_sampling(ir: dict[str, Any]) -> None:
    """
    Claude has no seed and no penalties: a request that sets them would get another answer than asked
    for, so it is refused; a penalty of 0 (the default, sent by many clients) changes nothing and passes.
    """
    sampling = ir.get("_sampling")
    if not isinstance(sampling, dict):
        return
    if sampling.get("seed") is not None:
        raise InvalidRequest("seed is not supported for Claude models", "seed")
    for key in ("presence_penalty", "frequency_penalty"):
        if sampling.get(key):
            raise InvalidRequest(f"{key} is not supported for Claude models (only 0, the default)", key)


def _fit_max_tokens(ir: dict[str, Any], ceiling: int | None) -> dict[str, Any]:
    """
    A default C{max_tokens} replaced by the model's C{ceiling}: Gemini 2.5 and 3 think by default and the
    thinking counts against the limit (a small default leaves an empty answer), and a small default cuts
    long Claude answers.  A thinking budget the ceiling cannot hold keeps the default (budget plus answer).
    """
    if "_max_tokens_default" not in ir:
        return ir
    out = {key: value for key, value in ir.items() if key != "_max_tokens_default"}
    if ceiling is None:
        return out
    thinking = out.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) and thinking.get("type") == "enabled" else None
    if isinstance(budget, int) and budget >= ceiling:
        return out
    out["max_tokens"] = ceiling
    return out


def _without_gemini_thinking(ir: dict[str, Any]) -> dict[str, Any]:
    """
    C{ir} without the thinking blocks Gemini signed (the conversation moved from Gemini to Claude): Claude
    cannot verify them and refuses the request; what Gemini thought is Gemini's.
    """
    messages = ir.get("messages")
    if not isinstance(messages, list):
        return ir

    def foreign(block: Any) -> bool:
        return isinstance(block, dict) and block.get("type") == "thinking" and \
            isinstance(block.get("signature"), str) and block["signature"].startswith(GEMINI_MARK)

    if not any(isinstance(m, dict) and isinstance(m.get("content"), list) and any(foreign(b) for b in m["content"])
               for m in messages):
        return ir
    kept = [{**m, "content": [b for b in m["content"] if not foreign(b)]}
            if isinstance(m, dict) and isinstance(m.get("content"), list) else m for m in messages]
    return {**ir, "messages": kept}
