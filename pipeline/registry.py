"""What the subsystems plug into the kernel: projections, reactions, jobs, subscribers, sweep hooks.

The kernel (store, projector, reactor, job runner, replay) names no subsystem. Each subsystem package
(``pipeline.cms``, ``pipeline.media``, ``pipeline.embeddings``, ``pipeline.failures``) has one
``register(registry)`` function that contributes its parts here, the way a dramatiq middleware is added
with one ``add_middleware`` call. The composition root (``pipeline.subsystems``) calls them in order and
hands the result to the ``Chronicle`` facade; a deployment adds its own side effects with a module of its
own that has a ``register(registry)`` too (``CHRONICLE_JOB_MODULES``).

One registry is built per ``Chronicle`` handle, so nothing here is process-global: two handles (a test
and the worker it starts, two data dirs in one process) never see each other's state.

Event *types* are the exception: they are pydantic classes registered in the catalogue when their module
is imported (``pipeline.events.event``), like SQLModel tables on their metadata, because the envelope
validator and the CLI's catalogue listing need them before any handle exists. ``register`` imports its
subsystem's events module, so building a registry also fills the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ChronicleError
from .projection import Handler, Projection, State
from .subscriber import Subscriber

if TYPE_CHECKING:
    from db.changes import Change

    from .context import JobContext
    from .envelope import Recorded
    from .jobs.spec import Job, JobSpec

Reaction = Callable[["Recorded"], "Iterable[Job]"]
SweepHook = Callable[["JobContext"], "list[Job]"]
StatusSection = Callable[["JobContext"], Any]
#: ``(ctx, failure row, redrive event id) → (task, queue, kwargs)``: how to redo a dead letter of one kind.
RedrivePlanner = Callable[["JobContext", "dict[str, Any]", str], "tuple[str, str, dict[str, Any]]"]


class RegistrationError(ChronicleError):
    """Two subsystems claimed the same name (a projection, a job, a subscriber)."""


@dataclass
class Registry:
    """Everything the kernel runs, by name. Built by ``pipeline.subsystems.build_registry``."""

    projections: dict[str, Projection] = field(default_factory=dict)
    reactions: dict[str, list[Reaction]] = field(default_factory=dict)
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    sweep_hooks: list[SweepHook] = field(default_factory=list)
    status_sections: dict[str, StatusSection] = field(default_factory=dict)
    exact_status_sections: dict[str, StatusSection] = field(default_factory=dict)
    redrive_planners: dict[str, RedrivePlanner] = field(default_factory=dict)
    _extensions: dict[str, list[Mapping[str, Handler]]] = field(default_factory=dict)

    # -- contributing ------------------------------------------------------------------------------

    def add_projection(self, projection: Projection) -> None:
        """Declare a projection this subsystem owns (its tables and handlers)."""
        self._claim(self.projections, projection.name, "projection")
        self.projections[projection.name] = self._with_extensions(projection)

    def extend_projection(self, name: str, handlers: Mapping[str, Handler]) -> None:
        """Feed another subsystem's projection with handlers for this subsystem's events (media and
        embeddings record their dead letters in ``failures`` this way). Handlers of one event type from
        several subsystems all run, in registration order, in the same transaction."""
        self._extensions.setdefault(name, []).append(handlers)
        if name in self.projections:
            self.projections[name] = self._with_extensions(self.projections[name], only=[handlers])

    def add_reaction(self, event_type: str, reaction: Reaction) -> None:
        """Turn events of ``event_type`` into side-effect jobs (run by the reactor subscriber)."""
        self.reactions.setdefault(event_type, []).append(reaction)

    def add_job(self, spec: JobSpec) -> None:
        """A side-effect job, run by ``drain`` in-process and by a Celery task on ``spec.queue``."""
        self._claim(self.jobs, spec.name, "job")
        self.jobs[spec.name] = spec

    def add_subscriber(self, subscriber: Subscriber) -> None:
        """A follower of the log with its own checkpoint; ``status``, the sweeper and ``drain`` see it."""
        self._claim(self.subscribers, subscriber.name, "subscriber")
        self.subscribers[subscriber.name] = subscriber

    def add_sweep_hook(self, hook: SweepHook) -> None:
        """Re-send work whose job was lost (a worker killed mid-job); run by the sweeper and ``drain``."""
        self.sweep_hooks.append(hook)

    def add_status_section(self, name: str, section: StatusSection, *, exact: StatusSection | None = None) -> None:
        """A section of ``chronicle status`` (images by status, embeddings, failures…).

        ``section`` must answer from indexed or aggregate queries (operators and health checks run
        ``status`` in loops, on logs of millions of events); ``exact``, if given, is a thorough variant
        that may visit every item, used by ``chronicle status --exact``, ``GET /status`` and the demo."""
        self.status_sections[name] = section
        if exact is not None:
            self.exact_status_sections[name] = exact

    def add_redrive_planner(self, kind: str, planner: RedrivePlanner) -> None:
        """How ``chronicle failures retry`` redoes a dead letter of ``kind`` (default: its recorded job)."""
        self._claim(self.redrive_planners, kind, "redrive planner")
        self.redrive_planners[kind] = planner

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _claim(names: Mapping[str, object], name: str, what: str) -> None:
        if name in names:
            raise RegistrationError(f"{what} {name!r} registered twice")

    def _with_extensions(self, projection: Projection,
                         only: list[Mapping[str, Handler]] | None = None) -> Projection:
        extensions = self._extensions.get(projection.name, []) if only is None else only
        if not extensions:
            return projection
        handlers: dict[str, list[Handler]] = {t: [h] for t, h in projection.handlers.items()}
        for extra in extensions:
            for event_type, handler in extra.items():
                handlers.setdefault(event_type, []).append(handler)
        return replace(projection, handlers={t: hs[0] if len(hs) == 1 else _chain(hs) for t, hs in handlers.items()})


def _chain(handlers: list[Handler]) -> Handler:
    def chained(event: Recorded, state: State) -> Iterable[Change]:
        return [change for handler in handlers for change in handler(event, state)]

    return chained


class Subsystem(Protocol):
    """A module with ``register(registry)``: what ``CHRONICLE_JOB_MODULES`` entries must provide."""

    def register(self, registry: Registry) -> None: ...
