"""Ops fixtures: a real gunicorn serving the app, and a Prometheus text parser."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port  # noqa: F401 - re-exported for the ops tests


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


def http(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> Reply:
    """One HTTP request with urllib; error statuses come back as replies, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return Reply(resp.status, resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers))


@pytest.fixture
def start_gunicorn(start_web):
    """``start_gunicorn(workers=2, **env)``: the shared real-gunicorn factory from tests/conftest.py."""
    return start_web


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted label pairs): value}`` for every sample in a Prometheus text page."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """One sample's value; 0 when absent (a labelled counter appears only once incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
