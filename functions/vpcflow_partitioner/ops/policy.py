"""How a resource policy (queue, topic, key) answers a service principal: IAM's evaluation,
for the statements and condition operators it can tell; anything else is said, never guessed.
Pure: used by `doctor`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


def listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool = True) -> bool:
    """IAM's wildcards: * any run of characters, ? one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


@dataclass(frozen=True, slots=True)
class Request:
    """What a service principal asks for, in a resource policy's terms."""

    principal: str  # a service principal: s3.amazonaws.com, events.amazonaws.com
    actions: tuple[str, ...]  # every one of them must be allowed
    resource: str
    context: dict[str, str]  # condition keys the request carries (lower-case names)


@dataclass
class Verdict:
    """How a resource policy answers a Request."""

    allowed: set[str] = field(default_factory=set)  # the actions some Allow statement grants
    denied: list[str] = field(default_factory=list)  # Sids of Deny statements that apply
    conditions: set[str] = field(default_factory=set)  # condition keys of the granting statements
    refused: list[str] = field(default_factory=list)  # why statements for this principal did not apply
    unverified: list[str] = field(default_factory=list)  # what this code cannot evaluate

    def grants(self, request: Request) -> bool:
        return not self.denied and all(a in self.allowed for a in request.actions)

    def caveat(self) -> str:
        """What the answer assumes ("" when nothing): conditions and statements not evaluated."""
        if not self.unverified:
            return ""
        return f" (assuming what this check cannot evaluate: {'; '.join(dict.fromkeys(self.unverified))})"


# Condition operators this check evaluates; others are reported as unverified, never guessed.
_OPERATORS: dict[str, tuple[bool, bool]] = {  # name -> (wildcards, negated)
    "stringequals": (False, False),
    "stringlike": (True, False),
    "stringequalsignorecase": (False, False),
    "arnequals": (True, False),  # ARN operators take wildcards in each component (IAM reference)
    "arnlike": (True, False),
    "stringnotequals": (False, True),
    "stringnotlike": (True, True),
    "arnnotequals": (True, True),
    "arnnotlike": (True, True),
    "bool": (False, False),  # "true"/"false", compared as IAM does: case-insensitively
}
# Services deliver to queues and topics over HTTPS, so a TLS-only Deny never refuses them.
SERVICE_CONTEXT = {"aws:securetransport": "true"}


def _condition_holds(operator: str, key: str, values: list[Any], context: dict[str, str]) -> bool | None:
    """True/False when this code can tell, None when it cannot."""
    # ForAnyValue:StringLike -> stringlike; ...IfExists is the plain operator when the key is present.
    name = operator.lower().split(":")[-1].removesuffix("ifexists")
    if name not in _OPERATORS or key.lower() not in context:
        return None
    wildcards, negated = _OPERATORS[name]
    actual = context[key.lower()]
    ignore_case = name in ("stringequalsignorecase", "bool")
    matched = any(
        _glob(str(v), actual, ignore_case)
        if wildcards
        else (str(v).lower() == actual.lower() if ignore_case else str(v) == actual)
        for v in values
    )
    return not matched if negated else matched


def evaluate_policy(policy: dict[str, Any] | None, request: Request) -> Verdict:
    """Which of `request.actions` the resource policy grants the service principal, and what
    refuses it. Explicit Deny wins, as in IAM's evaluation logic."""
    verdict = Verdict()
    for index, statement in enumerate(listify((policy or {}).get("Statement"))):
        if not isinstance(statement, dict):
            continue
        sid = str(statement.get("Sid") or f"statement {index + 1}")
        effect = str(statement.get("Effect", ""))
        if "NotPrincipal" in statement or "NotAction" in statement or "NotResource" in statement:
            verdict.unverified.append(f"{sid} uses NotPrincipal/NotAction/NotResource")
            continue
        if not _principal_matches(statement.get("Principal"), request.principal):
            continue
        actions = [a for a in request.actions if any(_glob(p, a) for p in listify(statement.get("Action")))]
        if not actions:
            continue
        resources = listify(statement.get("Resource"))
        if resources and not any(_glob(r, request.resource, ignore_case=False) for r in resources):
            verdict.refused.append(f"{sid} is for {', '.join(map(str, resources))}")
            continue
        holds, unknown = True, []
        keys: set[str] = set()
        for operator, pairs in (statement.get("Condition") or {}).items():
            for key, values in (pairs or {}).items():
                keys.add(key.lower())
                answer = _condition_holds(operator, key, listify(values), request.context)
                if answer is None:
                    unknown.append(f"{sid}: {operator} {key}")
                elif not answer:
                    holds = False
                    verdict.refused.append(f"{sid} requires {key} {listify(values)}")
        if not holds:
            continue
        # A condition this code cannot evaluate is said, never guessed: an Allow still counts
        # (with the note), a Deny does not (a "deny unless TLS" statement refuses nothing here).
        verdict.unverified += unknown
        if effect == "Deny" and not unknown:
            verdict.denied.append(sid)
        elif effect == "Allow":
            verdict.allowed.update(actions)
            verdict.conditions |= keys
    return verdict


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for kind, values in principal.items():
        if kind == "AWS" and "*" in listify(values):
            return True
        if kind == "Service" and service in listify(values):
            return True
    return False


def policy_document(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
