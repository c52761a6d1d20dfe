"""Manifest texts shared by the loader's and the composer's tests."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: web
      image: nginx
"""


def pod(name: str = "web") -> str:
    return POD.format(name=name)
