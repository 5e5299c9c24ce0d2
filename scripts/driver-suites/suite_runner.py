"""Runs a driver's own unittest suite and records one JSON line per test.

    suite_runner.py run OUT.jsonl [TEST_NAME ...]   (from the folder holding tests/)
    suite_runner.py diff DIRECT.jsonl GATEWAY.jsonl [--classify]
    suite_runner.py regressions DIRECT.jsonl GATEWAY.jsonl [--classify]
        (the ids of tests that pass directly and fail through the gateway,
        with --classify only the unexplained ones; one a line)

`run` prints "N passed, N failed, N skipped". A test whose subtests fail is
one failed test; a class or module that fails to set up is one failed entry.
`diff` prints every test whose outcome differs; with --classify, a test that
passes directly and fails through the gateway is put down to Airlock's
policy when the failure quotes Airlock's hold or denial, or to masking
when it shows a masked value; the rest are "unexplained".
"""

import json
import sys
import time
import traceback
import unittest


class Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []
        self._started = {}

    def _id(self, test):
        return test.id() if hasattr(test, "id") else str(test)

    def _record(self, test, outcome, detail=""):
        started = self._started.get(self._id(test), time.monotonic())
        self.records.append((outcome, self._id(test), round(time.monotonic() - started, 2), detail))

    def startTest(self, test):
        self._started[self._id(test)] = time.monotonic()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            detail = self._exc_info_to_string(err, test)
        else:
            detail = "".join(traceback.format_exception(*err))
        self._record(test, "fail", detail)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(test, "fail", f"{subtest}\n{self._exc_info_to_string(err, test)}")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "xpass")


def run(out, names):
    sys.path.insert(0, ".")
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(names) if names else loader.discover("tests", top_level_dir=".")
    result = unittest.TextTestRunner(resultclass=Result, verbosity=2, stream=sys.stderr).run(suite)
    merged = {}
    for outcome, tid, secs, detail in result.records:
        prev = merged.get(tid)
        if prev is None or (outcome == "fail" and prev[0] != "fail"):
            merged[tid] = (outcome, tid, secs, detail)
        elif outcome == "fail":
            merged[tid] = (outcome, tid, secs, prev[3] + "\n" + detail)
    counts = {}
    with open(out, "w") as f:
        for outcome, tid, secs, detail in merged.values():
            counts[outcome] = counts.get(outcome, 0) + 1
            f.write(json.dumps({"outcome": outcome, "id": tid, "secs": secs, "detail": detail}) + "\n")
    print(f"{counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, {counts.get('skip', 0)} skipped")


def load(path):
    with open(path) as f:
        return {r["id"]: r for r in map(json.loads, f)}


def outcome_of(results, tid):
    """A test's record; for a test that never ran because its class or
    module failed to set up, that failure's record."""
    if tid in results:
        return results[tid]
    module, _, rest = tid.rpartition(".")
    for scope, name in (("setUpClass", module), ("setUpModule", module.rpartition(".")[0])):
        record = results.get(f"{scope} ({name})")
        if record is not None:
            return record
    return {}


def why(detail):
    if "held for approval by Airlock" in detail:
        return "held"
    if "denied by Airlock" in detail:
        return "denied"
    # Masked values as the standard detectors write them, and the binary
    # forms (0.0.0.0 for a masked inet) the driver decodes them to.
    if any(m in detail for m in ("<IPV4>", "<IPV6>", "<EMAIL>", "<CARD>", "<PHONE>", "IPv4Address('0.0.0.0')")):
        return "masked"
    return "unexplained"


def diff(direct_path, gateway_path, classify):
    direct, gateway = load(direct_path), load(gateway_path)
    kinds = {}
    for tid in sorted(set(direct) | set(gateway)):
        a = direct.get(tid, {}).get("outcome", "-")
        b = outcome_of(gateway, tid).get("outcome", "-")
        if a == b:
            continue
        kind = ""
        if a == "pass" and b != "pass":
            kind = why(outcome_of(gateway, tid).get("detail", "")) if classify else "regression"
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"{a:>5} -> {b:<5} {kind:<12} {tid}")
    print("pass -> fail by cause: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))
    bad = kinds.get("unexplained", 0) + kinds.get("regression", 0)
    return 1 if bad else 0


def regressions(direct_path, gateway_path, classify):
    direct, gateway = load(direct_path), load(gateway_path)
    for tid, r in sorted(direct.items()):
        other = outcome_of(gateway, tid)
        if r["outcome"] != "pass" or other.get("outcome") == "pass":
            continue
        if classify and why(other.get("detail", "")) != "unexplained":
            continue
        print(tid)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "regressions":
        regressions(sys.argv[2], sys.argv[3], "--classify" in sys.argv[4:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "diff":
        sys.exit(diff(sys.argv[2], sys.argv[3], "--classify" in sys.argv[4:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
