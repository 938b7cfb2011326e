"""Locust load tests from the lab's scenario files, with the scenario's checks as SLO gate.

    locust -f loadtests/locustfile.py --headless --scenario scenarios/baseline.yaml \\
        --scenario-profile standin --results-dir runs/lt-baseline --csv runs/lt-baseline/locust

Exit code: 0 when every observable check of the scenario holds, 1 when one fails,
2 on bad input (unknown scenario, a profile that cannot be expressed, a refused host).
Options, the user/rate mapping and the gate's percentile handling: docs/loadtests.md.

Only this module imports Locust (which monkey-patches sockets with gevent); the logic
lives in the pure modules of :mod:`loadtests`.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import sys
import time
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, User, events, task
from locust.runners import MasterRunner, WorkerRunner

from labcore.retries import ClientRetries, PolicyPush, attempt, policy_pushes
from labcore.sandbox_client import SandboxError
from labcore.scenario_file import ScenarioError
from loadtests import gates, promslis
from loadtests.faults import FaultPlanError, FaultRunner
from loadtests.queries import QueryError
from loadtests.recorder import classify
from loadtests.session import LoadSession, OptionsError, build_session
from loadtests.shapes import ArrivalStream, PlanError
from loadtests.targets import TargetError
from sim import derive_seed

log = logging.getLogger("loadtests")
_BAD_INPUT = (ScenarioError, OptionsError, PlanError, QueryError, TargetError, FaultPlanError)
_REPORT_KEY = "omnisql_windows"
_STARTED_AT = "omnisql_started_at"  # wall clock of the master's test_start
_DRAIN = 4.0  # seconds: > Locust's WORKER_REPORT_INTERVAL (3 s)
_user_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("OmniSQL scenario (docs/loadtests.md)")
    group.add_argument("--scenario", default="", help="scenario file, e.g. scenarios/baseline.yaml")
    group.add_argument("--scenario-profile", default="",
                       help="a profile of the scenario, e.g. standin")
    group.add_argument("--scenario-set", action="append", default=[], metavar="PATH=VALUE",
                       help="override a scenario field (repeatable), as `python -m sim run --set`")
    group.add_argument("--per-user-rate", type=float, default=None,
                       help="peak requests/s per Locust user; users = ceil(peak rate / this) "
                       "(default 1 / the scenario's gateway timeout)")
    group.add_argument("--sandbox-dir", default="", help="sandbox dir with state.json "
                       "(default $OMNISQL_SANDBOX_DIR or .sandbox)")
    group.add_argument("--allow-host", action="append", default=[],
                       help="allow a non-loopback host (repeatable)")
    group.add_argument("--inject-faults", action="store_true", default=False,
                       help="run the scenario's fault timeline through the sandbox fault API")
    group.add_argument("--faults-external", action="store_true", default=False,
                       help="someone else runs the fault timeline on schedule (RTO is judged)")
    group.add_argument("--slis-from", choices=promslis.SOURCES, default="client",
                       help="judge error_rate and latency_p95 on the client's windows (default) "
                       "or on the sandbox's Prometheus over the same seconds (both reported)")
    group.add_argument("--results-dir", default="",
                       help="write summary.json, timeseries.csv, scenario.yaml, overview.png")


def _timed_out(error: object) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return isinstance(error, (TimeoutError, gevent.Timeout)) or "timed out" in text or (
        "timeout" in text)


def _session(environment: Any) -> LoadSession | None:
    return getattr(environment, "omnisql", None)


def _build(environment: Any) -> LoadSession:
    session = build_session(environment.parsed_options, environment.host)
    environment.host = session.target.host  # the master sends it on to its workers
    counts: dict[str, int] = {kind: plan.users for kind, plan in session.plan.kinds.items()}
    for kind, cls in USER_CLASSES.items():
        cls.fixed_count = counts.get(kind, 0)
        cls.network_timeout = cls.connection_timeout = session.scenario.topology.gateway.timeout
    environment.omnisql = session
    # The scenario's client retries, one budget per Locust process (a worker's share).
    environment.omnisql_retries = ClientRetries(
        session.scenario.topology.gateway.retries,
        random.Random(derive_seed(session.scenario.run.seed, "client.backoff")))
    return session


def _ship_windows(environment: Any) -> None:
    """Workers send their windows with each stats report; the master merges them."""

    def report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        session = _session(environment)
        if session is not None:
            data[_REPORT_KEY] = session.recorder.drain()

    def merge(client_id: str, data: dict[str, Any], **_: Any) -> None:
        session = _session(environment)
        if session is not None and _REPORT_KEY in data:
            session.recorder.merge(data[_REPORT_KEY])

    environment.events.report_to_master.add_listener(report)
    environment.events.worker_report.add_listener(merge)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    _ship_windows(environment)
    if environment.parsed_options is None or isinstance(environment.runner, WorkerRunner):
        return  # workers receive the master's options with the first spawn message
    try:
        session = _build(environment)
        options = environment.parsed_options
        if options.slis_from == "prometheus":  # refused now, not after the run
            session.info["prometheus_url"] = promslis.prometheus_url(
                options.sandbox_dir or None, options.allow_host or ())
    except _BAD_INPUT as exc:
        log.error("bad input: %s", exc)
        sys.exit(gates.EXIT_BAD_INPUT)
    _configure_standin(session)
    log.info("%s: %d users %s, %.1f req/s at t=0, %.0fs", session.scenario.name,
             session.plan.users, {k: p.users for k, p in session.plan.kinds.items()},
             session.plan.rate(0.0), session.plan.duration)


def _configure_standin(session: LoadSession) -> None:
    """Issue 18: the stand-in from the scenario, once (master or local runner), before
    any user starts; what it cannot honour is logged by name."""
    try:
        answer = session.configure_target()
    except SandboxError as exc:
        log.error("the stand-in refused the scenario: %s", exc)
        sys.exit(gates.EXIT_BAD_INPUT)
    if answer is not None:
        reasons = answer.get("reasons") or {}
        for path in answer.get("not_honoured") or []:
            log.warning("the stand-in cannot honour %s: %s", path, reasons.get(path, ""))


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    session = _session(environment)
    if session is None:
        try:
            session = _build(environment)
        except _BAD_INPUT as exc:
            log.error("bad input on worker: %s", exc)
            environment.runner.quit()
            return
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner):
        # run time 0 is the master's start, forwarded with its options in the spawn message
        session.start(getattr(options, _STARTED_AT, None))
    else:
        session.start()
        setattr(options, _STARTED_AT, time.time())
    # The scenario's client config pushes (retry_policy): every process's clients take them.
    for push in policy_pushes(session.scenario):
        gevent.spawn_later(max(0.0, push.at - session.now()), _push, environment, push)
    if session.inject_faults and not isinstance(environment.runner, WorkerRunner):
        runner = FaultRunner(str(session.target.admin_url), session.actions, sleep=gevent.sleep,
                             admin_token=session.target.admin_token)
        session.info["fault_runner"] = (runner, gevent.spawn(runner.run, session.now))


def _push(environment: Any, push: PolicyPush) -> None:
    environment.omnisql_retries.push(push)
    log.info("retry policy pushed at %.1fs: budget %s, backoff %s, max attempts %s",
             push.at, push.budget, push.backoff, push.max_attempts)


@events.quitting.add_listener
def _gate(environment: Any, **_: Any) -> None:
    session = _session(environment)
    if session is None or isinstance(environment.runner, WorkerRunner):
        return
    # Until the verdict is in, the run has not passed: a crash below must not exit 0
    # (Locust's own rule would, when no request failed).
    environment.process_exit_code = gates.EXIT_FAIL
    faults = session.info.pop("fault_runner", None)
    if faults is not None:
        runner, greenlet = faults
        greenlet.kill()  # no fault call may land after the reset
        cutover = runner.cutover_facts()  # before the reset ends the release
        status = runner.reset()
        session.info["faults_done"] = [[round(t, 2), a.method, a.path, s]
                                       for t, a, s in runner.done]
        log.info("faults reset -> %s", status)
        failed = [f"{a.method} {a.path}" for a in runner.failed]
        failed += [f"{a.method} {a.path} (reset)" for a, code in runner.undone
                   if not 200 <= code < 300]  # something would outlive the test
    else:
        failed, cutover = [], {}
    result = session.recorder.window_facts(session.scenario, session.now(),
                                           session.scenario.run.seed)
    result.facts.update(cutover)  # whole-run facts, as the simulator's run has them
    gate = gates.evaluate_gate(session.scenario, result, session.faults_applied)
    if "prometheus_url" in session.info:
        gate = _prometheus_gate(session, gate)
    summary = gates.summary(session.scenario, gate, session.info)
    if failed:  # the scenario's fault timeline did not happen: the run proves nothing
        log.error("fault calls failed: %s", failed)
        summary.update(passed=False, faults_failed=failed)
    environment.process_exit_code = gates.EXIT_PASS if summary["passed"] else gates.EXIT_FAIL
    from rich.console import Console

    Console(file=sys.stderr).print(gates.verdict_text(summary))
    out = environment.parsed_options.results_dir
    if out:
        from pathlib import Path

        gates.write_results(Path(out), summary, result, session.file.data)


def _prometheus_gate(session: LoadSession, gate: gates.GateResult) -> gates.GateResult:
    """``--slis-from prometheus``: re-judge on Prometheus's SLIs over the measured seconds."""
    time.sleep(promslis.SETTLE_SECONDS)  # the run's last requests reach a scrape
    seconds = max(1, math.ceil(session.now() - session.scenario.run.warmup))
    try:
        query = promslis.http_query(session.info["prometheus_url"])
        readings = promslis.read_slis(query, seconds)
    except (OSError, ValueError, KeyError) as exc:  # no reading: the checks fail, not pass
        log.error("prometheus SLIs not read: %s", exc)
        readings = {}
    gate, both = promslis.regate(session.scenario, gate, readings, session.faults_applied)
    session.info["slis_from"] = {"source": "prometheus", "seconds": seconds, "readings": both}
    log.info("SLIs over the last %d s, client vs prometheus: %s", seconds, both)
    return gate


class _TenantUser(FastHttpUser):
    """One Poisson arrival stream of a tenant kind (see loadtests.shapes).

    Arrivals are scheduled on the clock (``due``), not after the response; a candidate
    arrival at time t is kept with probability rate(t)/peak and goes to a tenant drawn
    by its share of the rate at t.
    """

    abstract = True
    kind = "normal"

    def on_start(self) -> None:
        session = _session(self.environment)
        assert session is not None, "the load session is built at init/test_start"
        self.session = session
        self.plan = session.plan.kinds[self.kind]  # type: ignore[index]
        number = next(_user_numbers)
        node = getattr(self.environment.runner, "client_id", "local")
        self.rng = random.Random(derive_seed(session.scenario.run.seed, "loadtest", node,
                                             self.kind, number))
        self.arrivals = ArrivalStream(self.plan, self.rng, session.now())
        self.retries: ClientRetries = self.environment.omnisql_retries

    def wait_time(self) -> float:
        return max(0.0, self.arrivals.due - self.session.now())

    @task
    def query(self) -> None:
        session = self.session
        early = self.arrivals.due - session.now()
        if early > 0:  # Locust runs a user's first task at once, before any wait_time
            gevent.sleep(early)
        now = session.now()
        at, tenant = self.arrivals.advance()
        if now - at > 1.0:
            session.recorder.count(now, "loadgen.late")
        if tenant is not None and at < session.plan.duration:
            self._send(tenant)

    def _send(self, tenant: str) -> None:
        """One request, retried as the scenario's client does; recorded once, with its
        final outcome and the time since its first attempt."""
        session = self.session
        q = session.mix.draw(tenant, self.rng)
        headers = {"Authorization": f"Bearer {session.target.api_keys[tenant]}",
                   "X-OmniSQL-User": q.user}
        start = time.perf_counter()
        tried = attempt(lambda: self._attempt(q.sql, q.name, headers),
                        lambda answer: classify(answer[0], answer[1]), self.retries, _pause)
        latency = time.perf_counter() - start
        status, code, cache = tried.answer
        end = session.now()
        session.recorder.request(end, tenant, latency, tried.outcome)
        for name, n in (("client.requests", 1), ("client.attempts", tried.attempts),
                        ("client.retries", tried.retries),
                        ("client.retries_denied", tried.denied)):
            session.recorder.count(end, name, n)
        if cache is not None:
            hit = cache in ("hit", "stale")
            session.recorder.count(end, "cache.hits" if hit else "cache.misses")
        if status in (400, 403, 404, 413):
            session.recorder.count(end, "loadgen.bad_request")
            log.error("bad request %s %s: %s", status, code, q.sql)

    def _attempt(self, sql: str, name: str, headers: dict[str, str],
                 ) -> tuple[int, str | None, Any]:
        """One attempt (one Locust request): status (0: no answer), error code, cache."""
        with self.client.post("/v1/query", json={"sql": sql}, headers=headers, name=name,
                              catch_response=True) as resp:
            status, code, cache = int(resp.status_code or 0), None, None
            try:
                body = resp.json() if resp.text else {}
            except ValueError:
                body = {}
            if status == 200:
                cache = body.get("cache")
                resp.success()
            else:
                code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
                if status == 0 and _timed_out(resp.error):
                    code = "UPSTREAM_TIMEOUT"  # the client's timeout: the simulator's timeout
                resp.failure(f"{status} {code or resp.error}")
        return status, code, cache


def _pause(seconds: float) -> bool:
    """A retry's backoff, cooperatively (never asks to stop: the shape ends the run)."""
    gevent.sleep(seconds)
    return False


class NormalTenantUser(_TenantUser):
    """The tenants without a traffic surge in the scenario."""

    kind = "normal"


class NoisyTenantUser(_TenantUser):
    """The tenant(s) with a ``traffic_surge`` fault: the noisy neighbour's flood."""

    kind = "noisy"


USER_CLASSES: dict[str, type[_TenantUser]] = {"normal": NormalTenantUser, "noisy": NoisyTenantUser}


class ScenarioShape(LoadTestShape):
    """All the plan's users from the start, until the scenario's (or ``-t``'s) end.

    A master holds 0 users for ``_DRAIN`` seconds before stopping, so that every worker's
    periodic report (every 3 s) delivers its last windows before the gate runs.

    The offered rate follows the profile through the users' thinning, not through the
    user count: Locust users are closed loops, and scaling them would tie the rate to
    the latency. ``LoadPlan.table`` lists users and offered rate over time.
    """

    use_common_options = False

    def tick(self) -> tuple[int, float, list[type[User]] | None] | None:
        session = _session(self.runner.environment) if self.runner else None
        if session is None:
            return None
        t = self.get_run_time()
        tick = session.plan.tick(t)
        if tick is None:
            if isinstance(self.runner, MasterRunner) and t < session.plan.duration + _DRAIN:
                return 0, session.plan.spawn_rate, None  # workers ship their last windows
            return None
        users, spawn_rate, kinds = tick
        return users, spawn_rate, [USER_CLASSES[k] for k in kinds]


__all__ = ["USER_CLASSES", "NoisyTenantUser", "NormalTenantUser", "ScenarioShape"]
