"""The state promotion acts on: the registry model's version aliases and the endpoint's deployments.

The registry says which version is in production (alias `production`) and which one was before it
(`previous-production`), and what each version's labels say (`blessed=true`, the run it came from);
the endpoint says which versions are deployed and how the traffic is split.
They agree when the production version is deployed and shares the traffic with at most one other
version (a canary); versions deployed with 0% are leftovers of an interrupted step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PRODUCTION = "production"
PREVIOUS = "previous-production"
CANDIDATE = "candidate"
DEFAULT = "default"  # Vertex AI's alias for the version a plain model name means; kept on production


@dataclass(frozen=True)
class Deployment:
    deployed_model_id: str
    model_id: str
    version: str
    traffic: int


@dataclass(frozen=True)
class State:
    model_id: str
    endpoint: str
    endpoint_exists: bool
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> version ID
    deployments: tuple[Deployment, ...] = ()
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # version ID -> its labels

    @property
    def production(self) -> str | None:
        return self.aliases.get(PRODUCTION)

    @property
    def previous(self) -> str | None:
        return self.aliases.get(PREVIOUS)

    def deployment(self, version: str | None) -> Deployment | None:
        return next((d for d in self.deployments if d.version == version), None) if version else None

    def traffic(self) -> dict[str, int]:
        """version -> percent, for every deployed version (0 included)."""
        return {d.version: d.traffic for d in self.deployments}

    @property
    def canaries(self) -> list[Deployment]:
        """Deployed versions other than production that receive traffic."""
        return [d for d in self.deployments if d.version != self.production and d.traffic > 0]

    @property
    def leftovers(self) -> list[Deployment]:
        """Deployed versions other than production without traffic."""
        return [d for d in self.deployments if d.version != self.production and d.traffic == 0]


def disagreements(state: State) -> list[str]:
    """Why the endpoint's live traffic does not match what the registry aliases say (empty if it does)."""
    problems = []
    foreign = sorted({d.model_id for d in state.deployments if d.model_id != state.model_id})
    if foreign:
        problems.append(f"the endpoint also serves other models: {', '.join(foreign)}")
    versions = [d.version for d in state.deployments]
    twice = sorted({v for v in versions if versions.count(v) > 1}, key=int)
    if twice:
        problems.append(f"versions deployed more than once: {', '.join(f'v{v}' for v in twice)}")
    total = sum(d.traffic for d in state.deployments)
    if state.deployments and total != 100:
        problems.append(f"the traffic split adds up to {total}%, not 100%")
    if len(state.canaries) > 1:
        problems.append(
            f"traffic goes to {len(state.canaries)} versions besides production "
            f"({', '.join(f'v{d.version}' for d in state.canaries)}); at most one canary is expected"
        )
    if state.production and state.deployment(state.production) is None:
        problems.append(f"alias {PRODUCTION} names v{state.production}, which is not deployed on the endpoint")
    if not state.production and len(state.deployments) > 1:
        problems.append(f"no version carries alias {PRODUCTION}, yet {len(state.deployments)} versions are deployed")
    return problems


def describe_traffic(traffic: Mapping[str, int], endpoint_exists: bool = True) -> str:
    if not endpoint_exists:
        return "endpoint does not exist yet"
    if not traffic:
        return "no deployed model"
    return ", ".join(f"v{version} {percent}%" for version, percent in sorted(traffic.items(), key=lambda i: int(i[0])))


def describe_labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(labels.items())) or "no labels"


def describe_aliases(aliases: Mapping[str, str]) -> str:
    shown = [f"{alias} v{aliases[alias]}" for alias in (PRODUCTION, PREVIOUS, CANDIDATE) if alias in aliases]
    return ", ".join(shown) or "none of production, previous-production, candidate"
