"""The MkDocs hook that renders reST roles in the API reference (docs/hooks/rst_roles.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HOOK = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "rst_roles.py"


def _hook():
    spec = importlib.util.spec_from_file_location("rst_roles", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_object_roles_become_optional_autorefs_with_the_short_name_after_a_tilde():
    out = _hook().render_roles("see :class:<code>~bayesrca.mechanisms.Mechanism</code> and :func:<code>bayesrca.save</code>")
    assert ":class:" not in out and ":func:" not in out
    assert '<autoref identifier="bayesrca.mechanisms.Mechanism" optional><code>Mechanism</code></autoref>' in out
    assert '<autoref identifier="bayesrca.save" optional><code>bayesrca.save</code></autoref>' in out


def test_math_role_becomes_readable_unicode_with_sub_and_superscripts():
    out = _hook().render_roles(r":math:<code>v_s(S) = \log P(\tau(X_t) \ge \tau(x_t) \mid N_S = n_S)</code>, :math:<code>\sigma^2</code>")
    assert ":math:" not in out
    assert "v<sub>s</sub>(S) = log P(τ(X<sub>t</sub>) ≥ τ(x<sub>t</sub>) ∣ N<sub>S</sub> = n<sub>S</sub>)" in out
    assert "σ<sup>2</sup>" in out


def test_text_without_roles_is_unchanged():
    text = "<p>plain <code>code</code> and a time 10:15:00</p>"
    assert _hook().render_roles(text) == text
