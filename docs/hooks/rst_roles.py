"""MkDocs hook: render the reST roles of the numpydoc docstrings in the API reference.

mkdocstrings' numpy style parses the sections of a docstring but leaves Sphinx roles as text, so
``:class:`~bayesrca.Foo``` showed as ":class:" and a code span. This hook, run on each page's
HTML before mkdocs-autorefs resolves links, turns

* ``:class:``, ``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:obj:``, ``:exc:``
  into a code span that links to the object's reference entry where there is one (an optional
  autoref: unknown targets stay plain code, no warning); a leading ``~`` shows only the last name;
* ``:math:`` into the formula with the common LaTeX commands written as Unicode (τ, ≥, ∣, √, …)
  and sub- and superscripts as such, in italics.
"""

from __future__ import annotations

import html
import re

_ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|obj|exc):<code>(~?)([^<]+?)</code>")
_MATH = re.compile(r":math:<code>([^<]*?)</code>")

_SYMBOLS = {
    r"\tau": "τ", r"\sigma": "σ", r"\mu": "μ", r"\theta": "θ", r"\phi": "φ", r"\varphi": "φ", r"\epsilon": "ε",
    r"\varepsilon": "ε", r"\lambda": "λ", r"\alpha": "α", r"\beta": "β", r"\xi": "ξ", r"\nu": "ν", r"\psi": "ψ",
    r"\Phi": "Φ", r"\pi": "π", r"\sum": "Σ", r"\prod": "Π", r"\ge": "≥", r"\geq": "≥", r"\le": "≤", r"\leq": "≤",
    r"\ne": "≠", r"\mid": "∣", r"\|": "‖", r"\sim": "~", r"\cdot": "·", r"\times": "×", r"\in": "∈",
    r"\infty": "∞", r"\approx": "≈", r"\to": "→", r"\setminus": "∖", r"\log": "log", r"\exp": "exp",
    r"\min": "min", r"\max": "max", r"\mathbb E": "𝔼", r"\mathcal N": "𝒩", r"\,": " ", r"\;": " ",
}
_COMMAND = re.compile("|".join(re.escape(k) + (r"(?![A-Za-z])" if k[-1].isalpha() else "") for k in sorted(_SYMBOLS, key=len, reverse=True)))
_WRAPPED = re.compile(r"\\(?:text|mathrm|operatorname|mathbf)\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\{([^{}]*)\}")
_SCRIPT = re.compile(r"([_^])(?:\{([^{}]*)\}|([A-Za-z0-9]))")
_TAGS = {"_": "sub", "^": "sup"}
_FRAC = re.compile(r"\\frac\{?([^{}\s]*)\}?\{?([^{}\s]*)\}?")


def _reference(match: re.Match) -> str:
    _, short, path = match.groups()
    shown = path.rsplit(".", 1)[-1] if short else path
    return f'<autoref identifier="{html.escape(path)}" optional><code>{html.escape(shown)}</code></autoref>'


def _formula(match: re.Match) -> str:
    tex = html.unescape(match.group(1))
    tex = _WRAPPED.sub(r"\1", tex)
    tex = _SQRT.sub(r"√(\1)", tex)
    tex = _FRAC.sub(r"\1/\2", tex)
    tex = _COMMAND.sub(lambda m: _SYMBOLS[m.group(0)], tex)
    out = _SCRIPT.sub(lambda m: f"<{_TAGS[m.group(1)]}>{m.group(2) or m.group(3)}</{_TAGS[m.group(1)]}>", html.escape(tex))
    return f'<span class="math"><em>{out.replace("{", "").replace("}", "")}</em></span>'


def render_roles(text: str) -> str:
    """The HTML ``text`` with reST roles rendered (see the module docstring)."""
    return _MATH.sub(_formula, _ROLE.sub(_reference, text))


def on_page_content(html_text: str, **kwargs: object) -> str:
    """MkDocs event: render the roles of every page."""
    return render_roles(html_text)
