"""A global time budget over an ordered list of steps: a step whose estimate no longer fits in
what is left is skipped (and said so) instead of running the benchmark past its bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

# Seconds a step is expected to take, asked just before it would run (so it can use what the
# earlier steps measured).
Estimate = Callable[[], float]


@dataclass
class Step:
    name: str
    run: Callable[[], None]
    estimate: Estimate
    required: bool = False  # runs whatever the budget says (start-up, say)


class SkipStep(Exception):
    """Raised by a step that cannot run (what it needs was skipped or failed): it is reported
    as skipped with this reason, not as failed."""


@dataclass(frozen=True)
class SkippedStep:
    name: str
    reason: str


@dataclass
class Budget:
    total_s: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        if self.total_s <= 0:
            raise ValueError("a budget must be positive")
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        return self.total_s - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        return estimate_s <= self.left()


@dataclass
class StepRunner:
    """Runs steps in order under a budget, with a progress bar over the steps. A step that
    raises is recorded as failed and the run goes on (one broken path must not cost the rest);
    `on_step` hears each step's name before it runs (the memory sampler's phase)."""

    budget: Budget
    on_step: Callable[[str], None] = lambda name: None
    skipped: list[SkippedStep] = field(default_factory=list)
    failed: list[SkippedStep] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    show_progress: bool = True

    def run(self, steps: Sequence[Step]) -> None:
        with tqdm(total=len(steps), unit="step", disable=not self.show_progress) as bar:
            for step in steps:
                bar.set_description(step.name[:60])
                bar.set_postfix_str(f"{self.budget.elapsed():.0f}/{self.budget.total_s:.0f} s")
                self.run_one(step)
                bar.update()

    def run_one(self, step: Step) -> None:
        if not step.required:
            estimate = max(0.0, step.estimate())
            if not self.budget.allows(estimate):
                left = max(0.0, self.budget.left())
                self.skipped.append(
                    SkippedStep(
                        step.name,
                        f"needs ~{estimate:.0f} s, {left:.0f} s of the "
                        f"{self.budget.total_s:.0f} s budget left",
                    )
                )
                return
        self.on_step(step.name)
        started = time.monotonic()
        try:
            step.run()
        except SkipStep as reason:
            self.skipped.append(SkippedStep(step.name, str(reason)))
        except Exception as error:
            if step.required:
                raise
            message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            self.failed.append(SkippedStep(step.name, message))
        finally:
            self.durations[step.name] = time.monotonic() - started
