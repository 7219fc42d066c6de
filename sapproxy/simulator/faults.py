"""
Armed faults: the controller tests (or the C{/_sim/faults} endpoint) use to make the next N requests to a
deployment (or to the token endpoint) fail in a chosen way.
"""

from __future__ import annotations

from attrs import define, field, frozen

#: Every fault the simulator knows, whether armed here or asked for by a C{#sim} directive.
FAULTS = frozenset({
    "429", "500", "503", "401",
    "reset_before_headers", "reset_mid_stream", "stall_mid_stream", "slow_headers", "error_mid_stream",
    "token_down",
})

#: The target meaning "every deployment and the token endpoint".
ANY = "*"
#: The target of faults on the XSUAA token endpoint alone.
TOKEN = "oauth/token"
#: The target of faults on the AI API (C{/v2/lm/...}, C{/v2/admin/...}) alone: "503", "500", resets.
AI_API = "ai-api"


@frozen
class ArmedFault:
    """One fault to inject, with the knobs some faults take."""

    fault: str
    retry_after: int = 1
    fault_after: int | None = None
    delay: float | None = None


@define
class _Slot:
    fault: ArmedFault
    remaining: int


@define
class FaultController:
    """
    Faults armed per target (a deployment id, L{TOKEN}, or L{ANY}); each firing uses up one count.
    """

    _slots: dict[str, list[_Slot]] = field(factory=dict)

    def set(self, deployment_id: str, fault: str, count: int = 1, retry_after: int = 1,
            fault_after: int | None = None, delay: float | None = None) -> None:
        """Arm C{fault} for the next C{count} matching requests."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        self._slots.setdefault(deployment_id, []).append(
            _Slot(ArmedFault(fault, retry_after, fault_after, delay), max(1, int(count))))

    def clear(self) -> None:
        """Disarm everything."""
        self._slots.clear()

    def take(self, target: str, *, token_endpoint: bool = False,
             only: frozenset[str] | None = None, any_target: bool = True) -> ArmedFault | None:
        """
        The fault to inject into this request, if one is armed, using it up. Token-endpoint requests only
        see faults meant for the token endpoint (C{token_down}, C{429}, C{500}, C{503}, resets).
        """
        for key in ((target, ANY) if any_target else (target,)):
            slots = self._slots.get(key)
            if not slots:
                continue
            for slot in slots:
                if only is not None and slot.fault.fault not in only:
                    continue
                if only is None and not token_endpoint and slot.fault.fault == "401":
                    continue
                if token_endpoint and key == ANY and slot.fault.fault in ("401", "reset_mid_stream",
                                                                           "stall_mid_stream", "error_mid_stream"):
                    continue
                if not token_endpoint and slot.fault.fault == "token_down":
                    continue
                slot.remaining -= 1
                if slot.remaining <= 0:
                    slots.remove(slot)
                return slot.fault
        return None

    def snapshot(self) -> list[dict[str, object]]:
        """The armed faults, for C{GET /_sim/stats}."""
        return [
            {"deployment": key, "fault": s.fault.fault, "count": s.remaining, "retry_after": s.fault.retry_after}
            for key, slots in self._slots.items() for s in slots
        ]
