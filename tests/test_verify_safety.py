"""Model output is untrusted: no string from it may reach eval, exec, sympify or parse_expr.

Three layers of proof: payloads that would create a file never do (end to end, worker included);
a tripwire on the string-evaluating entry points while the fast and the slow path run in this
process; and a static scan of the verify modules for calls to those functions.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import corl_gym
from corl_gym.verify import Verdict, check, check_many, extract_answer, is_equivalent
from corl_gym.verify.norm import normalize


def _payloads(marker: Path) -> list[str]:
    cmd = f"touch {marker}"
    py = f"__import__('os').system('{cmd}')"
    return [
        py, f"\\boxed{{{py}}}", f"${py}$", f"x = {py}", f"\\frac{{{py}}}{{2}}", f"({py}, 1)",
        f"(lambda: {py})()",
        f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0]('{cmd}', shell=True)",
        "().__class__.__mro__[1].__subclasses__()", f"eval(\"{py}\")", f"exec('import os; os.system(\"{cmd}\")')",
        f"\\text{{{py}}}", f"\\sqrt{{{py}}}", f"\\operatorname{{__import__}}('os').system('{cmd}')",
        f"getattr(__builtins__, 'eval')(\"{py}\")", f"Symbol('x').__class__.__init__.__globals__['os'].system('{cmd}')",
        f"2^{{{py}}}", f"\\begin{{pmatrix}} {py} \\\\ 1 \\end{{pmatrix}}", f"x \\in [{py}, 3]",
    ]


def test_injection_payloads_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payloads = _payloads(marker)
    for payload in payloads:
        assert check(payload, "5") in (Verdict.WRONG, Verdict.UNPARSEABLE)
        assert check("5", payload) in (Verdict.WRONG, Verdict.UNPARSEABLE)
        assert not is_equivalent(payload, "x")
        extract_answer(payload)
    check_many([(p, "\\sqrt{2}") for p in payloads] + [("\\sqrt{2}", p) for p in payloads])
    assert not marker.exists()


def test_tripwire_on_string_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run both paths in this process with every string evaluator booby-trapped."""
    import sys

    import math_verify.parser
    import sympy
    import sympy.parsing.sympy_parser

    from corl_gym.verify import fast_path
    from corl_gym.verify.symbolic import symbolic_verdict

    hits: list[str] = []

    # Strings are checked for payload content, not banned outright: library internals eval fixed
    # code (namedtuple), and latex2sympy turns grammar-checked digit tokens into numbers through
    # `sympy.Number(text)`, which sympifies the digits.
    def trap(original):
        def wrapped(arg, *args, **kwargs):
            if isinstance(arg, str) and any(marker in arg for marker in MARKERS):
                hits.append(arg)
                raise AssertionError(f"string evaluated: {arg!r}")
            return original(arg, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(sympy, "sympify", trap(sympy.sympify))
    core = sys.modules["sympy.core.sympify"]  # the module; `sympy.core.sympify` names the function
    monkeypatch.setattr(core, "sympify", trap(core.sympify))
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", trap(sympy.parsing.sympy_parser.parse_expr))
    monkeypatch.setattr(math_verify.parser, "parse_expr", trap(math_verify.parser.parse_expr))
    monkeypatch.setattr(builtins, "eval", trap(builtins.eval))
    with pytest.raises(AssertionError):  # the trap is armed
        sympy.parsing.sympy_parser.parse_expr("__import__('os')")
    hits.clear()
    for payload in _payloads(tmp_path / "PWNED") + ["\\sqrt{8}", "\\frac{\\pi}{2}", "x^2 - 1"]:
        fast_path(payload, "2\\sqrt{2}")
        symbolic_verdict(normalize(payload), "2\\sqrt{2}")
        symbolic_verdict("2\\sqrt{2}", normalize(payload))
    assert hits == []
    assert not (tmp_path / "PWNED").exists()


MARKERS = ("__", "import", "system", "lambda", "PWNED", "subclasses", "getattr", "exec", "eval", "Popen")
FORBIDDEN = {"eval", "exec", "sympify", "parse_expr", "S", "compile", "__import__", "parse_latex"}


def test_verify_modules_call_no_string_evaluator() -> None:
    package = Path(corl_gym.__file__).parent
    modules = sorted((package / "verify").glob("*.py"))
    assert len(modules) >= 8
    offenders = []
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    name = func.id
                elif isinstance(func, ast.Attribute) and not (
                    func.attr == "compile" and getattr(func.value, "id", "") == "re"
                ):
                    name = func.attr
                else:
                    name = ""
                if name in FORBIDDEN:
                    offenders.append(f"{module.name}:{node.lineno} {name}")
    assert offenders == []
