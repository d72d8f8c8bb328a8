"""`gantricks --help` and `gantricks list` answer without importing torch, from a catalog that equals the
registries (gantricks/catalog.py)."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

from gantricks import catalog
from gantricks.cli import main
from gantricks.recipes import RECIPES
from gantricks.registry import ALL

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _output(args) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(args) == 0
    return buf.getvalue()


def test_help_and_list_import_no_torch():
    out = _python(
        "import contextlib, io, sys\n"
        "from gantricks.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for args in (['--help'], ['train', '--help'], ['bench', '--help'], ['list'], ['list', 'trick'],\n"
        "                 ['list', 'r1'], ['list', 'mlp'], ['list', 'recipe']):\n"
        "        try:\n"
        "            main(args)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    assert out.strip() == "[]"


def test_the_written_catalog_equals_the_registries():
    """Read in a fresh process (components registered by other tests in this one do not count)."""
    fresh = _python("import json; from gantricks import catalog; print(json.dumps(catalog.from_registries()))")
    assert json.loads(catalog.PATH.read_text()) == json.loads(fresh), \
        "gantricks/catalog.json differs from the registries: write it again with `python -m gantricks.catalog`"


def test_list_names_every_registered_component_and_prints_as_from_the_registries(monkeypatch):
    fast = {args: _output(["list", *args]) for args in [(), *((k,) for k in [*ALL, "recipe"]), ("r1",), ("mlp",),
                                                    ("pacgan",), ("adam",), ("ring8",)]}
    listed = fast[()]
    for kind, registry in ALL.items():
        for name in registry.names():
            assert f"  {name} " in listed, (kind, name)
            assert f"  {name} " in fast[(kind,)], (kind, name)
    for name in RECIPES:
        assert f"  {name} " in listed
    monkeypatch.setattr(catalog, "load", lambda: None)        # as with a plugin installed: from the registries
    for args, text in fast.items():
        assert _output(["list", *args]) == text, args


def test_list_reads_the_registries_when_a_package_adds_components(monkeypatch):
    """An installed entry point can only be listed by importing it: the catalog then stands aside."""
    class Eps:
        groups = {"console_scripts", "gantricks.tricks"}
    monkeypatch.setattr(catalog.importlib.metadata, "entry_points", lambda: Eps())
    assert catalog.load() is None
    Eps.groups = {"console_scripts"}
    assert catalog.load() is not None


def test_an_unknown_name_is_still_one_clear_error(capsys):
    assert main(["list", "no-such-thing"]) == 2
    assert "neither a kind" in capsys.readouterr().err


def test_the_package_name_train_stays_the_function():
    out = _python("import gantricks, gantricks.train as m; from gantricks import train, GAN; "
                  "print(callable(gantricks.train), gantricks.train is train, m is train, GAN.__name__, "
                  "'ring8' in gantricks.list_datasets())")
    assert out.split() == ["True", "True", "True", "GAN", "True"]


def test_the_package_lists_each_kind_without_an_explicit_import():
    """The built-in components register when a registry is first asked, not on `import gantricks`."""
    out = _python("import json, gantricks; print(json.dumps({k: gantricks.registry.ALL[k].names() "
                  "for k in gantricks.registry.ALL}))")
    assert json.loads(out) == {k: r.names() for k, r in ALL.items()}
