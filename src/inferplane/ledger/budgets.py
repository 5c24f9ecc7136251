"""Budgets per API key and per team, per UTC day or month: soft (warn) and hard (refuse).

The gateway asks admit() before it sends a request on and settles the request's cost when it
ends. A request is refused once what is spent plus what is reserved by requests in flight
reaches the hard limit, so the overspend is bounded by the cost of the requests already in
flight when the limit was reached. Time comes from an injected clock.
"""

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from inferplane.ledger.usage import MICRO

if TYPE_CHECKING:  # memoryview takes no subscript at run time before Python 3.14
    Cells = list[float] | memoryview[float]

Clock = Callable[[], float]
Scope = Literal["key", "team"]
Period = Literal["day", "month"]
Account = tuple[Scope, str, Period]


@dataclass(frozen=True)
class Budget:
    scope: Scope
    name: str
    period: Period
    soft_usd: float | None = None
    hard_usd: float | None = None

    def __post_init__(self) -> None:
        where = f"budget for {self.scope} {self.name!r} per {self.period}"
        if self.soft_usd is None and self.hard_usd is None:
            raise ValueError(f"{where} needs soft_usd, hard_usd or both")
        if min(self.soft_usd or 0, self.hard_usd or 0) < 0:
            raise ValueError(f"{where}: limits must be >= 0 dollars")
        if self.soft_usd and self.hard_usd and self.soft_usd > self.hard_usd:
            raise ValueError(f"{where}: soft_usd must not exceed hard_usd (a warning comes first)")

    @property
    def account(self) -> Account:
        return (self.scope, self.name, self.period)


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    """The UTC day or month containing `now`, as [start, end) Unix seconds."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86_400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.timestamp(), after.timestamp()


def _usd(micro: int) -> str:
    return f"${micro / MICRO:,.2f}"


@dataclass(frozen=True)
class BudgetWarning:
    budget: Budget
    used_micro: int

    def header(self) -> str:
        b = self.budget
        return f"{b.scope}={b.name} {b.period} spend {_usd(self.used_micro)} of soft {b.soft_usd}"


@dataclass(frozen=True)
class BudgetExceeded:
    budget: Budget
    used_micro: int
    retry_after_s: int

    @property
    def message(self) -> str:
        b = self.budget
        return (
            f"budget exceeded: {b.scope} {b.name!r} spent {_usd(self.used_micro)} of its "
            f"${b.hard_usd:,.2f} per {b.period}; it resets in {self.retry_after_s} s"
        )

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error body for the 429 answer."""
        error = {"message": self.message, "type": "budget_exceeded", "param": None}
        return {"error": {**error, "code": "budget_exceeded"}}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    warnings: tuple[BudgetWarning, ...] = ()
    exceeded: BudgetExceeded | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.warnings:
            headers["X-Budget-Warning"] = "; ".join(w.header() for w in self.warnings)
        if self.exceeded:
            headers["Retry-After"] = str(self.exceeded.retry_after_s)
        return headers


class SharedCells(Protocol):
    """Numbers several processes share (the gateway's workers): `cells` at the offset `slot`
    gives for a name and kind, read and written holding `lock`."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def cells(self) -> "Cells": ...

    def slot(self, name: str, kind: str) -> int | None: ...


class _Tally:
    """An account's period start, spend and reservations (micro-dollars), as three numbers at
    `at` in `cells`: a list of its own, or cells the gateway's workers share."""

    __slots__ = ("at", "cells")

    def __init__(self, cells: "Cells", at: int = 0) -> None:
        self.cells = cells
        self.at = at

    def restart(self, period_start: float) -> None:
        """A new period starts at zero."""
        self.cells[self.at], self.cells[self.at + 1], self.cells[self.at + 2] = period_start, 0, 0

    @property
    def period_start(self) -> float:
        return self.cells[self.at]

    @property
    def spent_micro(self) -> int:
        return int(self.cells[self.at + 1])

    @spent_micro.setter
    def spent_micro(self, value: int) -> None:
        self.cells[self.at + 1] = value

    @property
    def reserved_micro(self) -> int:
        return int(self.cells[self.at + 2])

    @reserved_micro.setter
    def reserved_micro(self, value: int) -> None:
        self.cells[self.at + 2] = value

    @property
    def used_micro(self) -> int:
        return self.spent_micro + self.reserved_micro


@dataclass(frozen=True)
class _Reservation:
    accounts: tuple[tuple[Account, float], ...]  # (account, its period start)
    estimate_micro: int


class BudgetBook:
    """Spend and reservations per budget for the current period: this process's own, or in
    cells the gateway's workers share (`shared`), so that a budget holds for the gateway as a
    whole. Not thread-safe within a process (one event loop)."""

    def __init__(
        self, budgets: Iterable[Budget], clock: Clock, shared: SharedCells | None = None
    ) -> None:
        self._budgets: dict[tuple[Scope, str], list[Budget]] = {}
        for budget in budgets:
            self._budgets.setdefault((budget.scope, budget.name), []).append(budget)
        self._clock = clock
        self._shared = shared
        self._lock: AbstractContextManager[Any] = shared.lock if shared else nullcontext()
        self._tallies: dict[Account, _Tally] = {}
        self._in_flight: dict[str, _Reservation] = {}

    def budgets_for(self, key: str, team: str) -> list[Budget]:
        return [*self._budgets.get(("key", key), []), *self._budgets.get(("team", team), [])]

    def seed(self, budget: Budget, spent_micro: int) -> None:
        """Start the current period from what the ledger says was spent in it already (shared
        cells may know of more: spend another worker settled that the ledger has not yet)."""
        with self._lock:
            tally = self._tally(budget)
            tally.spent_micro = max(tally.spent_micro, spent_micro)

    def used_micro(self, budget: Budget) -> int:
        """Spent plus reserved by requests in flight, this period."""
        with self._lock:
            return self._tally(budget).used_micro

    def admit(self, request_id: str, key: str, team: str, estimate_micro: int = 0) -> Decision:
        """May this request run? If so, its estimate is reserved until settle()."""
        budgets = self.budgets_for(key, team)
        with self._lock:
            return self._admit(request_id, budgets, estimate_micro)

    def _admit(self, request_id: str, budgets: list[Budget], estimate_micro: int) -> Decision:
        exceeded = [e for b in budgets if (e := self._exceeded(b)) is not None]
        if exceeded:
            return Decision(False, exceeded=max(exceeded, key=lambda e: e.retry_after_s))
        warnings = tuple(w for b in budgets if (w := self._warning(b, estimate_micro)))
        accounts = []
        for budget in budgets:
            tally = self._tally(budget)
            tally.reserved_micro += estimate_micro
            accounts.append((budget.account, tally.period_start))
        self._in_flight[request_id] = _Reservation(tuple(accounts), estimate_micro)
        return Decision(True, warnings=warnings)

    def settle(self, request_id: str, cost_micro: int) -> None:
        """A request ended and cost this much: its reservation becomes spend."""
        reservation = self._in_flight.pop(request_id, None)
        if reservation is None:
            return
        with self._lock:
            for account, period_start in reservation.accounts:
                tally = self._tallies.get(account)
                if tally is not None and tally.period_start == period_start:
                    tally.reserved_micro -= reservation.estimate_micro
                    tally.spent_micro += cost_micro

    def in_flight(self) -> int:
        return len(self._in_flight)

    def _tally(self, budget: Budget) -> _Tally:
        start, _ = period_bounds(budget.period, self._clock())
        tally = self._tallies.get(budget.account)
        if tally is None:
            tally = self._tallies[budget.account] = self._new_tally(budget)
        if tally.period_start != start:
            tally.restart(start)  # a new period (or a new account) starts at zero
        return tally

    def _new_tally(self, budget: Budget) -> _Tally:
        shared = self._shared
        at = (
            None
            if shared is None
            else shared.slot(budget.name, f"budget:{budget.scope}:{budget.period}")
        )
        if shared is not None and at is not None:
            return _Tally(shared.cells, at)
        return _Tally([-1.0, 0.0, 0.0])

    def _exceeded(self, budget: Budget) -> BudgetExceeded | None:
        used = self._tally(budget).used_micro
        if budget.hard_usd is None or used < round(budget.hard_usd * MICRO):
            return None
        now = self._clock()
        _, end = period_bounds(budget.period, now)
        return BudgetExceeded(budget, used, max(1, math.ceil(end - now)))

    def _warning(self, budget: Budget, estimate_micro: int) -> BudgetWarning | None:
        used = self._tally(budget).used_micro + estimate_micro
        if budget.soft_usd is None or used < round(budget.soft_usd * MICRO):
            return None
        return BudgetWarning(budget, used)
